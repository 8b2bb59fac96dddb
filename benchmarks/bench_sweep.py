"""``infersim sweep`` on all cores: wall time, CPU time and whether parallel equals serial.

The issue's target: a 200-point sweep of 10 k-request runs in <= 2 minutes on 2 cores. The grid
is the shipped ``default`` scenario (Llama-3.1-8B, 2 prefill + 4 decode H100) over
``workload.arrival.rate`` x ``pools.decode.instances``, every run at ``--requests`` requests.
Each sweep is ``infersim sweep`` in a fresh child process with its default worker count (every
core this process may use) and a fresh output folder, so nothing is reused from a store.

Prints, per repeat, the wall time and the CPU seconds of the sweep and its workers together
(the work to be shared out: divided by the cores it is the wall time of a machine with nothing
else running), the runs per second, and the median; then a check that a smaller sweep gives a
byte-identical ``sweep.csv`` with ``--workers 1`` and with the default workers.

    python benchmarks/bench_sweep.py                      # the issue's 200 x 10 k
    python benchmarks/bench_sweep.py --points 40 --repeats 1   # a quick look; scale by 200/40
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_POINTS = 200
TARGET_REQUESTS = 10_000
TARGET_WALL_S = 120.0
DECODE_INSTANCES = (2, 3, 4, 5, 6, 8, 10, 12, 14, 16)


def grid(points: int) -> list[str]:
    """``--grid`` options for ``points`` runs: decode pool sizes x arrival rates."""
    sizes = DECODE_INSTANCES[:max(1, min(len(DECODE_INSTANCES), points // 2))]
    rates = -(-points // len(sizes))  # ceil
    values = ",".join(str(4 + 2 * i) for i in range(rates))
    return ["--grid", "pools.decode.instances=" + ",".join(map(str, sizes)),
            "--grid", f"workload.arrival.rate={values}"]


def sweep(points: int, requests: int, out: Path, workers: int | None) -> tuple[float, float]:
    """Run one sweep in a child process; (wall s, CPU s of the child and its workers)."""
    code = "import sys; from infersim.cli import main; sys.argv[0] = 'infersim'; main()"
    cmd = [sys.executable, "-c", code, "sweep", "default", *grid(points),
           "--set", f"workload.requests={requests}", "--out", str(out)]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH", "")])}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=TARGET_POINTS)
    parser.add_argument("--requests", type=int, default=TARGET_REQUESTS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--check-points", type=int, default=8,
                        help="grid size of the serial-vs-parallel check (0: skip it)")
    args = parser.parse_args()
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    print(f"infersim sweep default, {args.points} points x {args.requests:,} requests, default "
          f"workers ({cores} cores here), load {os.getloadavg()[0]:.1f}")
    walls, cpus = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            wall, cpu = sweep(args.points, args.requests, Path(tmp) / f"sweep{repeat}", None)
            walls.append(wall)
            cpus.append(cpu)
            print(f"  repeat {repeat + 1}: {wall:.1f} s wall, {cpu:.1f} CPU s "
                  f"({args.points / wall:.2f} runs/s; CPU s / {cores} cores = {cpu / cores:.1f} s)",
                  flush=True)
        wall, cpu = statistics.median(walls), statistics.median(cpus)
        scale = TARGET_POINTS / args.points * TARGET_REQUESTS / args.requests
        print(f"median: {wall:.1f} s wall, {cpu:.1f} CPU s; {cpu / args.points:.2f} CPU s per run")
        print(f"target: {TARGET_POINTS} x {TARGET_REQUESTS:,} requests in <= {TARGET_WALL_S:.0f} s "
              f"on 2 cores; here {'measured' if scale == 1 else f'scaled x{scale:g}'}: "
              f"{wall * scale:.0f} s wall, {cpu * scale / 2:.0f} s of CPU per core on 2 idle cores")
        if args.check_points:
            serial = Path(tmp) / "serial"
            parallel = Path(tmp) / "parallel"
            sweep(args.check_points, 2000, serial, 1)
            sweep(args.check_points, 2000, parallel, None)
            same = ((serial / "sweep.csv").read_bytes() == (parallel / "sweep.csv").read_bytes()
                    and (serial / "sweep.parquet").read_bytes()
                    == (parallel / "sweep.parquet").read_bytes())
            print(f"{args.check_points}-point sweep, --workers 1 vs {cores}: sweep.csv and "
                  f"sweep.parquet {'byte-identical' if same else 'DIFFER'}")
            if not same:
                raise SystemExit(1)


if __name__ == "__main__":
    main()
