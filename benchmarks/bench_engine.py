"""Engine speed benchmark: requests per second of wall time, and memory, versus run size.

The scenario is the issue's target: 16 prefill + 48 decode instances (Llama-3.1-8B on H100, one
chip each), the ``chat`` mix (Azure conversation lengths: prompt mean ~1155, output mean ~211),
Poisson arrivals below saturation. Each (size, repeat) runs in a fresh child process so that its
peak RSS is its own. Prints, per size, the median wall time of the simulation alone (workload
generation and the summary are timed apart), simulated requests per second, peak RSS, and the
ratio of CPU time per request to that of the smallest size (1.0 = linear; CPU time, because on a
shared machine the wall clock also measures the neighbours), and ends with the issue's
target and whether this machine meets it (checked on the 1,000,000-request row when it was run;
otherwise only what the run can say).

    .venv/bin/python benchmarks/bench_engine.py --sizes 10000,100000,1000000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

# The speed target (GitHub issue 3): 1 M requests through this cluster in <= 20 s of wall
# time on 2 cores (>= 50 k simulated requests/s), peak memory <= 2 GB, cost linear in requests.
TARGET_REQUESTS = 1_000_000
TARGET_WALL_S = 20.0
TARGET_RSS_MB = 2048.0
LINEAR_TOLERANCE = 1.25  # time per request at the largest size over the smallest's, at most


def cluster(prefill: int, decode: int):
    from infersim.cost import Deployment
    from infersim.hardware import load_hardware
    from infersim.model import load_model
    from infersim.sim import ClusterSpec, LinkSpec, PoolSpec

    dep = Deployment(model=load_model("llama-3.1-8b"), hardware=load_hardware("h100"))
    return ClusterSpec(
        pools=(PoolSpec("prefill", "prefill", dep, prefill, max_batch_tokens=8192,
                        max_batch_size=64),
               PoolSpec("decode", "decode", dep, decode, max_batch_tokens=8192,
                        max_batch_size=256)),
        # each prefill instance has its own 400 Gbit/s NIC: 16 x 50 GB/s into the fabric
        links=(LinkSpec("prefill", "decode", bandwidth=prefill * 50e9, latency_s=20e-6),))


def child(size: int, rate: float, seed: int, profile: str | None) -> dict:
    import numpy as np

    from infersim.metrics import summarize
    from infersim.sim import simulate_cluster
    from infersim.workload import build_workload
    from infersim.workload.config import WorkloadConfig

    t0 = time.perf_counter()
    cfg = WorkloadConfig.model_validate({"mix": "chat", "requests": size,
                                         "arrival": {"process": "poisson", "rate": rate}})
    workload = build_workload(cfg, np.random.default_rng(seed), base_dir=None)
    spec = cluster(16, 48)
    t1 = time.perf_counter()
    c1 = time.process_time()
    if profile:
        import cProfile
        import pstats
        prof = cProfile.Profile()
        result = prof.runcall(simulate_cluster, spec, workload, seed=seed)
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    else:
        result = simulate_cluster(spec, workload, seed=seed)
    t2 = time.perf_counter()
    c2 = time.process_time()
    summary = summarize(result)
    t3 = time.perf_counter()
    return {"size": size, "build_s": t1 - t0, "sim_s": t2 - t1, "cpu_s": c2 - c1,
            "summary_s": t3 - t2, "load_avg": os.getloadavg()[0],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "completed": summary["completed"], "duration": summary["duration"],
            "p99_ttft_ms": summary["p99_ttft_ms"], "p99_itl_ms": summary["p99_itl_ms"],
            "decode_util": summary["infersim"]["utilization"]["decode"],
            "prefill_util": summary["infersim"]["utilization"]["prefill"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rate", type=float, default=400.0, help="arrivals per second")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="cProfile one run per size")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.rate, args.seed, "1" if args.profile else None)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{'requests':>10} {'sim s':>8} {'cpu s':>8} {'req/s':>9} {'req/cpu s':>9} {'build s':>8} "
          f"{'summary s':>9} {'peak RSS MB':>11} {'x linear':>8} {'load':>5}  (median of "
          f"{args.repeats}; x linear: sim CPU s per request over the smallest size's; load: 1-min "
          f"load average at the end; python {sys.version.split()[0]}, {os.cpu_count()} cores)")
    base = None
    rows = {}
    for size in sizes:
        runs = []
        for r in range(1 if args.profile else args.repeats):
            cmd = [sys.executable, __file__, "--child", str(size), "--rate", str(args.rate),
                   "--seed", str(args.seed + r)] + (["--profile"] if args.profile else [])
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            if args.profile:
                print(out[: out.rfind("{")])
            runs.append(json.loads(out[out.rfind("{"):]))
        sim = statistics.median(run["sim_s"] for run in runs)
        cpu = statistics.median(run["cpu_s"] for run in runs)
        per = cpu / size
        base = base or per
        print(f"{size:>10} {sim:>8.2f} {cpu:>8.2f} {size / sim:>9.0f} {size / cpu:>9.0f} "
              f"{statistics.median(run['build_s'] for run in runs):>8.2f} "
              f"{statistics.median(run['summary_s'] for run in runs):>9.2f} "
              f"{max(run['peak_rss_mb'] for run in runs):>11.0f} {per / base:>8.2f} "
              f"{max(run['load_avg'] for run in runs):>5.1f}",
              flush=True)
        rows[size] = {"sim_s": sim, "cpu_s": cpu, "linear": per / base,
                      "rss_mb": max(run["peak_rss_mb"] for run in runs)}
        last = runs[-1]
        print(f"{'':>10} sim duration {last['duration']:.0f} s, completed {last['completed']}, "
              f"util prefill {last['prefill_util']:.2f} decode {last['decode_util']:.2f}, "
              f"p99 TTFT {last['p99_ttft_ms']:.1f} ms, p99 ITL {last['p99_itl_ms']:.2f} ms")
    if not args.profile:
        print(verdict(rows))


def verdict(rows: dict[int, dict[str, float]]) -> str:
    """The target, and whether the measured rows meet it (only what they can tell)."""
    head = (f"target: {TARGET_REQUESTS:,} requests in <= {TARGET_WALL_S:.0f} s wall on 2 cores "
            f"(>= {TARGET_REQUESTS / TARGET_WALL_S:,.0f} req/s), peak RSS <= "
            f"{TARGET_RSS_MB / 1024:.0f} GB, time per request within {LINEAR_TOLERANCE}x of the "
            f"smallest size's ({os.cpu_count()} cores here)")
    if TARGET_REQUESTS not in rows:
        largest = max(rows)
        row = rows[largest]
        return (f"{head}\n  NOT CHECKED: {TARGET_REQUESTS:,} not in --sizes; at {largest:,}: "
                f"{largest / row['sim_s']:,.0f} req/s wall ({largest / row['cpu_s']:,.0f} per "
                f"CPU s), {row['rss_mb']:.0f} MB, {row['linear']:.2f}x linear")
    row = rows[TARGET_REQUESTS]
    checks = [("wall", row["sim_s"] <= TARGET_WALL_S,
               f"{row['sim_s']:.1f} s ({TARGET_REQUESTS / row['sim_s']:,.0f} req/s; "
               f"{row['cpu_s']:.1f} CPU s)"),
              ("memory", row["rss_mb"] <= TARGET_RSS_MB, f"{row['rss_mb']:.0f} MB"),
              ("linear", row["linear"] <= LINEAR_TOLERANCE, f"{row['linear']:.2f}x")]
    met = all(ok for _, ok, _ in checks)
    parts = "; ".join(f"{name} {'ok' if ok else 'MISSED'}: {text}" for name, ok, text in checks)
    return f"{head}\n  {'MET' if met else 'NOT MET'}: {parts}"


if __name__ == "__main__":
    main()
