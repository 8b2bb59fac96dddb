"""The whole ``infersim run`` path, timed phase by phase: what a user waits for, and its memory.

The cluster is :mod:`bench_engine`'s (16 prefill + 48 decode H100 instances of Llama-3.1-8B, the
``chat`` mix, Poisson arrivals at 400 req/s), written as a scenario file. Each (size, repeat)
runs in a fresh child process, so its peak RSS is its own. Two kinds of child:

- ``run``: ``infersim run <scenario> --out <tmp> --quiet`` in-process, as a user runs it (wall
  time, CPU time, peak RSS of the process);
- ``phases``: the same work, stage by stage, with a timer around each: load (read and check the
  scenario, build the cluster spec), workload (draw the requests), sim (the engine), token gaps
  (the ITL multiset and each request's largest gap, rebuilt from the compact token clock),
  summary (:func:`infersim.api.summarise_run`: vLLM-bench metrics, pricing, per-class and
  steady-state figures), each output file (in sequence here; ``infersim run`` writes the tables
  on a second thread while the plots draw), plots. Its summary.json must equal the ``run`` child's byte for byte (checked), so the
  breakdown describes the command and not a look-alike.

Prints medians over the repeats (wall s, CPU s; CPU time because on a shared machine wall time
also measures the neighbours), peak RSS, the per-request cost of each size over the smallest's
(1.0 = linear), and the issue's target.

    python benchmarks/bench_cli.py --sizes 100000,1000000 --repeats 3
    python benchmarks/bench_cli.py --sizes 20000 --repeats 1 --no-plots   # a quick look
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_REQUESTS = 1_000_000
TARGET_WALL_S = 20.0
TARGET_RSS_MB = 2048.0
LINEAR_TOLERANCE = 1.15  # cost per request at 1 M over that at 100 k, at most (issue 14)

SCENARIO = """\
name: bench-cli
seed: {seed}
model: llama-3.1-8b
precision: bf16
pools:
  prefill: {{role: prefill, hardware: h100, instances: 16, tp: 1, max_batch_tokens: 8192,
             max_batch_size: 64}}
  decode: {{role: decode, hardware: h100, instances: 48, tp: 1, max_batch_tokens: 8192,
            max_batch_size: 256}}
links:
  # each prefill instance has its own 400 Gbit/s NIC: 16 x 50 GB/s into the fabric
  - {{between: [prefill, decode], bandwidth: 800 GB/s, latency: 20 us}}
router: {{policy: least_loaded, decode_policy: kv_aware}}
workload:
  arrival: {{process: poisson, rate: {rate}}}
  requests: {requests}
  mix: chat
slo: {{ttft_ms: 1000, itl_ms: 50, percentile: 99}}
"""


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_run(scenario: Path, out: Path, plots: bool) -> dict:
    """``infersim run`` in this process, as the console script runs it."""
    from infersim.cli import main

    argv = ["run", str(scenario), "--out", str(out), "--quiet"] + ([] if plots else
                                                                   ["--no-plots"])
    w0, c0 = time.perf_counter(), time.process_time()
    try:
        main(argv)
    except SystemExit as stop:
        if stop.code:
            raise
    return {"wall_s": time.perf_counter() - w0, "cpu_s": time.process_time() - c0,
            "rss_mb": _rss_mb(), "summary_sha": _sha(out / "summary.json")}


def child_phases(scenario: Path, out: Path, plots: bool) -> dict:
    """The same work as ``infersim run``, one timer per stage (see the module docstring)."""
    phases: dict[str, float] = {}
    cpu: dict[str, float] = {}
    peak: dict[str, float] = {}  # the process's peak RSS at the end of each phase
    clock = [time.perf_counter(), time.process_time()]

    def lap(name: str) -> None:
        now, now_cpu = time.perf_counter(), time.process_time()
        phases[name] = now - clock[0]
        cpu[name] = now_cpu - clock[1]
        peak[name] = _rss_mb()
        clock[:] = [now, now_cpu]

    from infersim.api import summarise_run
    from infersim.report.outputs import write_frames, write_summary
    from infersim.report.save import result_frames, write_plots
    from infersim.scenario import build_cluster, check_scenario, load_scenario
    from infersim.scenario.preflight import (
        beyond_context_requests,
        beyond_context_warning,
        build_workload_for,
    )
    from infersim.scenario.seeds import run_streams
    from infersim.sim import simulate_cluster
    lap("import")

    sc = load_scenario(scenario)
    resolved = check_scenario(sc)
    cluster = build_cluster(sc, resolved)
    lap("load")
    workload_rng, engine_seed = run_streams(sc.seed)
    workload = build_workload_for(sc, workload_rng)
    beyond = beyond_context_requests(resolved, workload)
    warnings = (beyond_context_warning(resolved, beyond, len(workload)),) if beyond else ()
    lap("workload")
    sim = simulate_cluster(cluster, workload, seed=engine_seed, time_limit_s=sc.time_limit)
    lap("sim")
    sim.itl_distribution()  # the token clock read once (cached for the summary)
    sim.max_token_gap()
    lap("token gaps")
    result = summarise_run(sc, resolved, sim, beyond_context=beyond, warnings=warnings)
    lap("summary")
    out.mkdir(parents=True, exist_ok=True)
    write_summary(result.summary, out / "summary.json")
    lap("write summary.json")
    for name, frame in result_frames(result).items():
        write_frames(out, {name: frame()})
        lap(f"write {name}")
    if plots:
        write_plots(result, out)
        lap("plots")
    return {"phases": phases, "cpu": cpu, "peak": peak, "rss_mb": _rss_mb(),
            "summary_sha": _sha(out / "summary.json")}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _child(kind: str, size: int, seed: int, rate: float, plots: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        scenario = Path(tmp) / "bench-cli.yaml"
        scenario.write_text(SCENARIO.format(seed=seed, rate=rate, requests=size))
        work = child_run if kind == "run" else child_phases
        return work(scenario, Path(tmp) / "out", plots)


def _spawn(kind: str, size: int, seed: int, rate: float, plots: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--sizes", str(size), "--seed", str(seed),
           "--rate", str(rate)] + ([] if plots else ["--no-plots"])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(done.stdout[done.stdout.rfind("\n{") + 1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rate", type=float, default=400.0, help="arrivals per second")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-plots", dest="plots", action="store_false")
    parser.add_argument("--no-phases", dest="phases", action="store_false",
                        help="time only the whole command")
    parser.add_argument("--child", choices=("run", "phases"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.child:
        print("\n" + json.dumps(_child(args.child, sizes[0], args.seed, args.rate, args.plots)))
        return
    print(f"infersim run, bench_engine's cluster; median of {args.repeats}; python "
          f"{sys.version.split()[0]}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    rows: dict[int, dict[str, float]] = {}
    for size in sizes:
        runs = [_spawn("run", size, args.seed, args.rate, args.plots)
                for _ in range(args.repeats)]
        wall = statistics.median(r["wall_s"] for r in runs)
        cpu = statistics.median(r["cpu_s"] for r in runs)
        rss = max(r["rss_mb"] for r in runs)
        rows[size] = {"wall_s": wall, "cpu_s": cpu, "rss_mb": rss}
        print(f"\n{size:,} requests: infersim run {wall:.2f} s wall, {cpu:.2f} s CPU, "
              f"peak RSS {rss:,.0f} MB ({size / wall:,.0f} req/s)", flush=True)
        if not args.phases:
            continue
        staged = [_spawn("phases", size, args.seed, args.rate, args.plots)
                  for _ in range(args.repeats)]
        if {s["summary_sha"] for s in staged} != {r["summary_sha"] for r in runs}:
            raise SystemExit("the staged run's summary.json differs from infersim run's")
        print(f"  {'phase':<24} {'wall s':>8} {'CPU s':>8} {'peak MB':>8}  (staged child; peak: "
              f"the process's peak RSS when the phase ends)")
        for name in staged[0]["phases"]:
            print(f"  {name:<24} {statistics.median(s['phases'][name] for s in staged):>8.2f} "
                  f"{statistics.median(s['cpu'][name] for s in staged):>8.2f} "
                  f"{max(s['peak'][name] for s in staged):>8,.0f}")
        post = [sum(v for k, v in s["cpu"].items() if k not in ("import", "load", "workload",
                                                                   "sim")) for s in staged]
        print(f"  {'after the engine':<24} {'':>8} {statistics.median(post):>8.2f}")
    print()
    print(verdict(rows))


def verdict(rows: dict[int, dict[str, float]]) -> str:
    """The issue's target, and whether the measured rows meet it (only what they can tell)."""
    head = (f"target: infersim run of {TARGET_REQUESTS:,} requests in <= {TARGET_WALL_S:.0f} s "
            f"wall and <= {TARGET_RSS_MB / 1024:.0f} GB peak RSS on 2 cores, CPU per request at "
            f"1 M within {LINEAR_TOLERANCE}x of 100 k's")
    lines = [head]
    small, large = min(rows), max(rows)
    if small != large:
        ratio = (rows[large]["cpu_s"] / large) / (rows[small]["cpu_s"] / small)
        lines.append(f"  CPU per request, {large:,} over {small:,}: {ratio:.2f}x")
    if TARGET_REQUESTS in rows:
        row = rows[TARGET_REQUESTS]
        lines.append(f"  1 M: wall {'ok' if row['wall_s'] <= TARGET_WALL_S else 'MISSED'} "
                     f"({row['wall_s']:.1f} s), memory "
                     f"{'ok' if row['rss_mb'] <= TARGET_RSS_MB else 'MISSED'} "
                     f"({row['rss_mb']:,.0f} MB)")
    else:
        lines.append(f"  NOT CHECKED at {TARGET_REQUESTS:,}: not in --sizes")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
