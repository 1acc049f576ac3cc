"""Benchmark: a notebook as a student writes it costs no more to grade than the bare answer.

For each exercise given (default: mlp and cnn), two notebooks with the same correct answer:

- **real**: tests/real_notebooks/EXERCISE.ipy in the released stub: the data loaded, a training of 10 epochs on
  all 60,000 images, TensorBoard, plots, magics, shell and Colab lines (none of which grading runs);
- **bare**: the stub filled with tests/submissions/EXERCISE/correct.py.

Each is graded by ``deepgrade check EXERCISE NOTEBOOK --json --profile smoke --seed 1`` as a whole process,
real and bare in turn (real, bare, real, bare, ...: the machine's drift cancels pair by pair), ``--repeat``
times. Prints each run's wall seconds and the student jail's seconds (``environment.sandbox_seconds``), the
medians, and the median of the pairwise ratios real / bare (goal: 1.0 within noise).

    .venv/bin/python benchmarks/notebooks.py                 # mlp and cnn, 3 pairs each
    .venv/bin/python benchmarks/notebooks.py rnn --repeat 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def notebooks(exercise: str, folder: Path) -> dict[str, Path]:
    from conftest import real_notebook
    from deepgrade.course import load_course, write_submission

    course = load_course(REPO)
    return {
        "real": real_notebook(course, exercise, folder / "real" / f"{exercise}.ipynb"),
        "bare": write_submission(course.release_notebook(exercise), REPO / "tests/submissions" / exercise / "correct.py",
                                 folder / "bare" / f"{exercise}.ipynb"),
    }


def check(exercise: str, notebook: Path) -> tuple[float, float, float]:
    """(wall seconds, the student jail's seconds, score / max) of one ``deepgrade check`` process."""
    cmd = [str(Path(sys.executable).parent / "deepgrade"), "check", exercise, str(notebook), "--json",
           "--profile", "smoke", "--seed", "1", "--course", str(REPO)]
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - start
    report = json.loads(proc.stdout)
    return wall, report["environment"].get("sandbox_seconds", float("nan")), report["score"] / report["max_score"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exercises", nargs="*", default=["mlp", "cnn"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="deepgrade-bench-") as tmp:
        print(f"{'exercise':<14} {'run':>3} {'real wall':>10} {'bare wall':>10} {'real jail':>10} {'bare jail':>10} "
              f"{'ratio':>6}")
        for exercise in args.exercises:
            paths = notebooks(exercise, Path(tmp) / exercise)
            check(exercise, paths["bare"])  # a warm-up: the file cache, not counted
            rows = []
            for run in range(1, args.repeat + 1):
                real, bare = check(exercise, paths["real"]), check(exercise, paths["bare"])
                if real[2] != 1.0 or bare[2] != 1.0:
                    raise SystemExit(f"{exercise}: expected full marks for both. Received: real {real[2]:.0%}, "
                                     f"bare {bare[2]:.0%}")
                rows.append((real, bare, real[0] / bare[0]))
                print(f"{exercise:<14} {run:>3} {real[0]:>10.2f} {bare[0]:>10.2f} {real[1]:>10.2f} {bare[1]:>10.2f} "
                      f"{real[0] / bare[0]:>6.3f}")
            med = statistics.median
            print(f"{exercise:<14} {'med':>3} {med(r[0][0] for r in rows):>10.2f} {med(r[1][0] for r in rows):>10.2f} "
                  f"{med(r[0][1] for r in rows):>10.2f} {med(r[1][1] for r in rows):>10.2f} "
                  f"{med(r[2] for r in rows):>6.3f}")


if __name__ == "__main__":
    main()
