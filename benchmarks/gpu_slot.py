"""The GPU slot's Python side (``benchmarks/gpu_slot.sh`` runs it; see there for the whole job).

    python benchmarks/gpu_slot.py build --models DIR
        here (TensorFlow and the student's jail): the reference and every baseline of each exercise, built once
        into DIR (deepgrade.calibrate.build_models), for a machine that cannot build them.
    python benchmarks/gpu_slot.py calibrate --models DIR --budget S [--seeds N] [--first-seed F] [--batch K]
        there (JAX, no TensorFlow, no bubblewrap): in this one process, the references of every exercise first,
        then their baselines, each under seeds F..F+N-1, K seeds trained at once; no training starts after S
        seconds, and every training that ended is in the records (docs/calibration/, then docs/calibration.md's
        sections). A later slot goes on with --first-seed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXERCISES = ("mlp", "cnn", "rnn", "regularization", "transfer")


def say(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)


def build(args: argparse.Namespace) -> int:
    from deepgrade.calibrate import ANSWER, build_models, models_of
    from deepgrade.course import load_course

    course = load_course(REPO)
    for exercise in args.exercises:
        # the reference and the baselines, not the answers (course.yml): a dozen more models would not fit in
        # what a slot carries (64 MiB), nor in its time
        wanted = [name for name in models_of(course.exercise(exercise)) if not name.startswith(ANSWER)]
        made = build_models(course, exercise, Path(args.models), say, only=wanted)
        say(f"{exercise}: {', '.join(m.name for m in made)} in {Path(args.models) / exercise}")
    return 0


def calibrate(args: argparse.Namespace) -> int:
    """References first, then baselines; a summary line per exercise and phase; 1 if nothing was trained."""
    import keras

    from deepgrade.calibrate import calibrate as run
    from deepgrade.calibrate import write_section
    from deepgrade.course import load_course
    from deepgrade.errors import DeepgradeError

    course = load_course(REPO)
    deadline = time.monotonic() + args.budget
    say(f"Keras {keras.__version__} on {keras.backend.backend()}; profile {args.profile}; seeds "
        f"{args.first_seed}..{args.first_seed + args.seeds - 1}, {args.batch} at once; budget {args.budget:.0f} s")
    done: dict[str, dict] = {}
    trained = 0
    for phase in ("references", "baselines"):
        for exercise in args.exercises:
            names = (["reference solution"] if phase == "references"
                     else list(course.exercise(exercise).baselines))
            if not names:
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                say(f"{exercise} {phase}: not started, the budget is spent")
                continue
            start = time.monotonic()
            lines: list[str] = []
            try:
                result = run(course, exercise, args.seeds, args.profile, progress=lines.append, models=Path(args.models),
                             first_seed=args.first_seed, only=names, batch=args.batch, budget=left)
            except DeepgradeError as exc:
                say(f"{exercise} {phase}: {exc}")
                continue
            finally:
                kept = [line for line in lines if ", seed " in line]
                trained += len(kept)
                for line in lines:
                    if ", seed " not in line:
                        say(f"{exercise}: {line}")
                say(f"{exercise} {phase}: {len(kept)} trainings in {time.monotonic() - start:.1f} s")
            done[exercise] = result
            write_section(REPO / "docs" / "calibration.md", result)
            pack(args.profile)
    for exercise, result in done.items():
        rates = {name: rate.said() for name, rate in _rates(result)}
        say(f"{exercise}: seeds {len(result['seeds'])}; proposed {json.dumps(result['thresholds'])}; rates {rates}")
    say(f"{trained} trainings in all")
    return 0 if trained else 1


def pack(profile: str) -> None:
    """$OUT/slot.tar.gz: docs/calibration.md and the profile's records as they are now (written anew after each
    model, so that a slot stopped from outside still brings back every section it wrote)."""
    import os
    import tarfile

    out = os.environ.get("OUT")
    if not out:
        return
    tmp = Path(out) / "slot.tar.gz.part"
    with tarfile.open(tmp, "w:gz") as tar:
        tar.add(REPO / "docs" / "calibration.md", arcname="docs/calibration.md")
        for path in sorted((REPO / "docs" / "calibration").glob(f"*-{profile}*.jsonl")):
            tar.add(path, arcname=f"docs/calibration/{path.name}")
    tmp.rename(Path(out) / "slot.tar.gz")


def _rates(result: dict):
    found = result.get("rates", {})
    reference = found.get("reference")
    if reference is not None:
        yield "reference false fail", reference
    for (model, check), rate in found.get("baselines", {}).items():
        yield f"{model} false pass of {check}", rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("--models", required=True)
    b.add_argument("--exercises", nargs="*", default=list(EXERCISES))
    c = sub.add_parser("calibrate")
    c.add_argument("--models", required=True)
    c.add_argument("--budget", type=float, required=True, help="seconds after which no training starts")
    c.add_argument("--profile", default="full")
    c.add_argument("--seeds", type=int, default=200)
    c.add_argument("--first-seed", type=int, default=0)
    c.add_argument("--batch", type=int, default=50, help=(
        "seeds trained at once (one vmapped program); the budget is checked between batches"))
    c.add_argument("--exercises", nargs="*", default=list(EXERCISES))
    args = parser.parse_args(argv)
    return build(args) if args.command == "build" else calibrate(args)


if __name__ == "__main__":
    sys.exit(main())
