"""Benchmark: seeds trained together (`calibrate --batch`) against the committed records of the same exercise.

    .venv/bin/python benchmarks/seeds.py mlp --seeds 200 --batch 50 [--models DIR] [--only NAME ...]

Trains the reference and the baselines (or ``--only`` those) under seeds 0..N-1 in the smoke profile, ``--batch``
at a time on JAX (in a child process: Keras' backend is chosen once per process), records nothing, and prints
for every model and metric the batched distribution beside each records file of the exercise
(docs/calibration/<exercise>-smoke*.jsonl: TensorFlow's, JAX's one seed at a time): n, mean, sd, min, 1%, max,
the two-sample Kolmogorov-Smirnov distance with its asymptotic p-value, and the mean per-seed |difference|
(how far float rounding carried each seed). Then the wall time and the trainings per minute.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys
from pathlib import Path
from deepgrade.calibrate import calibrate
from deepgrade.course import load_course
args = json.loads(sys.argv[1])
result = calibrate(load_course(), args["exercise"], args["seeds"], "smoke", models=Path(args["models"]),
                   only=args["only"], record=False, batch=args["batch"])
print(json.dumps({run.name: {"seeds": list(run.seeds), "values": run.values} for run in result["runs"]}))
"""


def ks(a: list[float], b: list[float]) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov distance and its asymptotic p-value."""
    xs = sorted(set(a) | set(b))
    sa, sb = sorted(a), sorted(b)

    def cdf(sample, x):
        lo, hi = 0, len(sample)
        while lo < hi:
            mid = (lo + hi) // 2
            if sample[mid] <= x:
                lo = mid + 1
            else:
                hi = mid
        return lo / len(sample)

    d = max(abs(cdf(sa, x) - cdf(sb, x)) for x in xs)
    if d == 0:
        return 0.0, 1.0
    n = len(a) * len(b) / (len(a) + len(b))
    lam = (math.sqrt(n) + 0.12 + 0.11 / math.sqrt(n)) * d
    p = 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return d, min(1.0, max(0.0, p))


def row(label: str, values: list[float]) -> str:
    """The figures a calibration section shows (its own functions), on one line."""
    from deepgrade.calibrate import Runs
    from deepgrade.calibrate.section import _quantile

    low, mean, high, sd = Runs(label, {"metric": values}).stats("metric")
    return (f"  {label:<34} n {len(values):>3}  mean {mean:.4f}  sd {sd:.4f}  min {low:.4f}  "
            f"1% {_quantile(values, 0.01):.4f}  max {high:.4f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("exercise")
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--models", default=str(REPO / ".slot" / "models"),
                        help="built models (benchmarks/gpu_slot.sh --prepare keeps them in .slot/models)")
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args(argv)

    from deepgrade.calibrate import read_records, section_files

    start = time.monotonic()
    child = subprocess.run([sys.executable, "-c", CHILD, json.dumps(vars(args))], cwd=REPO, capture_output=True,
                           text=True, env={**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"})
    wall = time.monotonic() - start
    if child.returncode:
        print(child.stderr[-4000:], file=sys.stderr)
        return child.returncode
    batched = json.loads(child.stdout.strip().splitlines()[-1])
    trainings = sum(len(run["seeds"]) for run in batched.values())
    print(f"{args.exercise}, smoke profile: seeds 0-{args.seeds - 1}, {args.batch} at once on JAX "
          f"(python benchmarks/seeds.py {' '.join(argv or sys.argv[1:])})")
    files = section_files(REPO, args.exercise, "smoke")
    for name, run in batched.items():
        for metric, values in run["values"].items():
            print(f"{name}: {metric}")
            print(row("batched (this run)", values))
            mine = dict(zip(run["seeds"], values, strict=True))
            for path in files:
                _, records = read_records(path)
                theirs = {seed: r["metrics"][metric] for (model, seed), r in records.items()
                          if model == name and metric in r["metrics"]}
                if not theirs:
                    continue
                d, p = ks(values, list(theirs.values()))
                same = [abs(mine[s] - theirs[s]) for s in mine if s in theirs]
                print(row(f"records {path.name}", list(theirs.values()))
                      + f"  KS D {d:.3f} p {p:.2f}  per-seed |diff| {statistics.fmean(same) if same else float('nan'):.4f}")
    print(f"wall {wall:.1f} s for {trainings} trainings (JAX start, data and models included): "
          f"{trainings / wall * 60:.1f} trainings per minute")
    return 0


if __name__ == "__main__":
    sys.exit(main())
