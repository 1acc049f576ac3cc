"""Benchmark: grading a class with plain ``nbgrader autograde`` (serial) versus ``deepgrade autograde``.

Prints, as a plain-text table:

1-2. wall time (and wall / N) to grade N submissions across the exercises: serially, one
     ``nbgrader autograde EX --force`` subprocess per exercise, and with deepgrade's batch API
     (``deepgrade.batch.autograde.autograde_all``, one pool for all exercises, in this process) for each
     worker count W;
3.   the fixed overhead per submission inside the deepgrade runs: for each graded item, the task's
     ``seconds`` minus its report's ``train_seconds`` and ``evaluate_seconds`` (median, mean, and the
     median for warm and cold workers);
4.   speedups: serial wall / deepgrade wall, and the throughput of W workers against W=1 (target 0.8 x W);
5.   ``deepgrade check mlp solutions/mlp/mlp.ipynb`` against a plain-Keras floor (the same MLP trained on the
     same budget in a bare subprocess), interleaved, median of --repeat runs, with the ratio (goal 1.1).

With only mlp (``--exercises mlp``), each round also times the class floor: one process, Keras imported and
the data loaded once, the same MLP trained and evaluated N times on the same budget; every class run is given
against it (goal: the fastest deepgrade run at most 1.3x). Each task's seconds run from the notebook handed to
the worker to its report (the student's jail included: a warm one forks per notebook, and its start counts in
the first task that uses it).

Every timed class run gets a fresh copy of a prepared nbgrader course folder (no ``.deepgrade`` store, so
nothing is reused). Each submission's code differs by a line the graded function needs (it sets
``build_model.__doc__`` to the student's name), so no two share a grade key, neither the notebook's nor what
its jail built (a comment would not do: it never runs, and equal code building equal models is trained once).

    .venv/bin/python benchmarks/batch.py            # the five exercises, 2 submissions each, W = 1,2
    .venv/bin/python benchmarks/batch.py --quick    # mlp only, 2 submissions, W = 1,2, 2 check/floor repeats
    .venv/bin/python benchmarks/batch.py --exercises mlp --per-exercise 12 --skip-check   # the issue's class
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ALL_EXERCISES = ["mlp", "cnn", "rnn", "regularization", "transfer"]
MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")
STUDENTS = "student{:02d}"

# The floor: what `deepgrade check mlp` computes, with nothing around it. Same data preparation, seeded
# subset, seeding (op determinism included), model, compile settings and budget as the grader
# (deepgrade.grader.training); evaluated on the 10,000 test images. Settings come in as JSON in argv[1].
FLOOR = r"""
import json, sys, time
start = time.monotonic()
cfg = json.loads(sys.argv[1])
import numpy as np
import keras
from keras import layers
(x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
x_train = (x_train.astype("float32") / 255.0)[..., None]
x_test = (x_test.astype("float32") / 255.0)[..., None]
keras.utils.set_random_seed(cfg["seed"])
if keras.backend.backend() == "tensorflow":
    import tensorflow as tf
    tf.config.experimental.enable_op_determinism()
size = cfg["train_size"] or len(x_train)
index = np.sort(np.random.default_rng(cfg["seed"]).permutation(len(x_train))[:size])
x, y = x_train[index], y_train[index].astype("int64")
fits, evaluates, accuracies = [], [], []
for _ in range(cfg.get("count", 1)):
  keras.utils.set_random_seed(cfg["seed"])
  model = keras.Sequential([
      keras.Input(shape=(28, 28, 1)),
      layers.Flatten(),
      layers.Dense(256, activation="relu"),
      layers.Dropout(0.4),
      layers.Dense(256, activation="relu"),
      layers.Dropout(0.4),
      layers.Dense(10, activation="softmax"),
  ])
  optimizer = keras.optimizers.get(cfg["optimizer"])
  if cfg["learning_rate"] is not None:
      optimizer.learning_rate = cfg["learning_rate"]
  model.compile(optimizer=optimizer, loss=cfg["loss"], metrics=cfg["metrics"])
  ready = time.monotonic()
  model.fit(x, y, epochs=cfg["epochs"], batch_size=cfg["batch_size"], shuffle=True, verbose=0)
  fitted = time.monotonic()
  scores = model.predict(x_test, batch_size=1024, verbose=0)
  accuracies.append(float(np.mean(np.argmax(scores, axis=-1) == y_test)))
  done = time.monotonic()
  fits.append(fitted - ready)
  evaluates.append(done - fitted)
  setup = setup if len(fits) > 1 else ready - start
print(json.dumps({"setup_seconds": setup, "fit_seconds": sum(fits) / len(fits),
                  "evaluate_seconds": sum(evaluates) / len(evaluates), "test_accuracy": accuracies[-1],
                  "total_seconds": time.monotonic() - start}))
"""


# -- helpers --------------------------------------------------------------------------------------------------

def sub_env() -> dict[str, str]:
    from deepgrade.demo import tool_env

    return {**tool_env(), "TF_CPP_MIN_LOG_LEVEL": "3"}


def median(values) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def mean(values) -> float:
    values = list(values)
    return statistics.fmean(values) if values else float("nan")


def fmt(value: float, digits: int = 1) -> str:
    return "-" if value != value else f"{value:.{digits}f}"  # NaN -> "-"


def table(header: list[str], rows: list[list[str]], indent: str = "  ") -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells):
        return indent + "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                                  for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([line(header), indent + "  ".join("-" * w for w in widths), *map(line, rows)])


def run_timed(cmd: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, env=sub_env(), capture_output=True, text=True)
    return time.monotonic() - start, proc


def fail(what: str, proc: subprocess.CompletedProcess) -> None:
    tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
    raise SystemExit(f"{what} failed with exit code {proc.returncode}:\n{tail}")


# -- the class ------------------------------------------------------------------------------------------------

def answers_for(course, exercise: str, stub: Path) -> tuple[dict[str, str], str]:
    """The answer cells of a correct submission: tests/submissions/EX/correct.py, else the reference solution's
    own solution cells (rnn has no correct.py; its reference is solutions/rnn/rnn.ipynb)."""
    import nbformat

    from deepgrade.course import solution_ids, split_answers

    ids = solution_ids(nbformat.read(stub, as_version=4))
    correct = REPO / "tests" / "submissions" / exercise / "correct.py"
    if correct.is_file():
        return split_answers(correct.read_text(), ids), str(correct.relative_to(REPO))
    source = course.source_notebook(exercise)
    answers = {}
    for cell in nbformat.read(source, as_version=4).cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("solution") and meta.get("grade_id") in ids:
            answers[meta["grade_id"]] = "".join(line for line in cell.source.splitlines(keepends=True)
                                                if line.strip() not in MARKERS)
    return answers, f"{source.relative_to(REPO)} (solution cells)"


def prepare_class(course, folder: Path, exercises: list[str], per_exercise: int, *, profile: str | None,
                  seed: int | None) -> dict[str, str]:
    """An nbgrader course folder with every exercise released and ``per_exercise`` correct submissions each."""
    import nbformat
    from rich.console import Console

    from deepgrade.course import fill
    from deepgrade.demo import nbgrader, nbgrader_config

    folder.mkdir(parents=True)
    (folder / "nbgrader_config.py").write_text(nbgrader_config(course, profile=profile, seed=seed))
    quiet = Console(file=io.StringIO())
    used = {}
    for exercise in exercises:
        nbgrader(folder, "generate_assignment", exercise, "--force", console=quiet)
        stubs = sorted((folder / "exercises" / exercise).glob("*.ipynb"))
        if len(stubs) != 1:
            raise SystemExit(f"expected one released notebook for {exercise}; found {[s.name for s in stubs]}")
        stub = stubs[0]
        answers, used[exercise] = answers_for(course, exercise, stub)
        entry = course.exercise(exercise).entry
        where = next((k for k, v in answers.items() if f"def {entry}(" in v), next(iter(answers)))
        for i in range(1, per_exercise + 1):
            student = STUDENTS.format(i)
            # distinct keys: code the graded function needs differs (a comment would not: it never runs), the
            # model does not
            mine = {**answers, where: f"{answers[where]}\n{entry}.__doc__ = 'handed in by {student}'\n"}
            out = folder / "submitted" / student / exercise / stub.name
            out.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(fill(stub, mine), out)
    return used


def fresh_copy(template: Path, scratch: Path, name: str) -> Path:
    folder = scratch / name
    shutil.copytree(template, folder)
    shutil.rmtree(folder / ".deepgrade", ignore_errors=True)  # no stored grades: everything is graded
    return folder


def recorded_total(folder: Path, exercises: list[str]) -> tuple[float, float, int]:
    """(points, max points, submissions) as the folder's gradebook holds them."""
    from nbgrader.api import Gradebook, MissingEntry

    from deepgrade.demo import COURSE_ID

    score = top = count = 0
    with Gradebook(f"sqlite:///{folder / 'gradebook.db'}", COURSE_ID) as gb:
        for student in gb.students:
            for exercise in exercises:
                try:
                    sub = gb.find_submission(exercise, student.id)
                except MissingEntry:
                    continue
                score, top, count = score + sub.score, top + sub.max_score, count + 1
    return score, top, count


def stored_reports(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((folder / ".deepgrade" / "grades" / "results").glob("*/*.json"))]


def serial_nbgrader(folder: Path, exercises: list[str]) -> float:
    nbgrader_bin = str(Path(sys.executable).parent / "nbgrader")
    total = 0.0
    for exercise in exercises:
        seconds, proc = run_timed([nbgrader_bin, "autograde", exercise, "--force"], folder)
        if proc.returncode != 0:
            fail(f"`nbgrader autograde {exercise} --force` in {folder}", proc)
        total += seconds
    return total


def deepgrade_batch(course, folder: Path, exercises: list[str], workers: int, *, profile: str | None,
                    seed: int | None) -> tuple[float, list[dict]]:
    """Wall seconds for the whole class with W workers (one pool for every exercise, as
    `deepgrade autograde mlp cnn ...` does), and one dict per graded item."""
    from rich.console import Console

    from deepgrade.batch.autograde import autograde_all
    from deepgrade.batch.gradebook import Classroom
    from deepgrade.batch.pool import close_kept

    log = io.StringIO()
    console = Console(file=log, width=120)
    items = []
    start = time.monotonic()
    classroom = Classroom(folder, course, profile=profile, seed=seed)
    try:
        outcomes = autograde_all(classroom, exercises, workers=workers, console=console)
    finally:  # graded in this process (a class too small for a pool): each run starts its jails, as a CLI run does
        close_kept()
    for exercise, outcome in outcomes.items():
        for graded in outcome.graded:
            env = graded.report.get("environment", {})
            items.append({"exercise": exercise, "seconds": graded.seconds, "warm": graded.grader_warm,
                          "finished": graded.finished, "score": graded.report.get("score", 0.0),
                          "max_score": graded.report.get("max_score", 0.0),
                          "train": float(env.get("train_seconds", 0.0) or 0.0),
                          "evaluate": float(env.get("evaluate_seconds", 0.0) or 0.0),
                          "sandbox": float(env.get("sandbox_seconds", 0.0) or 0.0),
                          "grade": float(env.get("grade_seconds", 0.0) or 0.0),
                          "error": env.get("grader_error") or env.get("grader_errors")})
        unrecorded = [row.student for row in outcome.summary.rows if row.recorded]
        if unrecorded:
            print(log.getvalue()[-4000:])
            raise SystemExit(f"deepgrade autograde {exercise} (W={workers}): not recorded: {unrecorded}")
    return time.monotonic() - start, items


def overhead(item: dict) -> float:
    return item["seconds"] - item["train"] - item["evaluate"]


def floor_settings(course, profile: str, seed: int, count: int = 1) -> dict:
    """What the floor trains: the MLP's budget and compile settings, ``count`` models in one process."""
    budget = course.profile("mlp", profile)
    compile_ = course.exercise("mlp").compile
    return {"seed": seed, "train_size": budget.train_size, "epochs": budget.epochs, "batch_size": budget.batch_size,
            "optimizer": compile_.optimizer, "learning_rate": compile_.learning_rate, "loss": compile_.loss,
            "metrics": list(compile_.metrics), "count": count}


def class_floor(course, n: int, *, profile: str, seed: int) -> float:
    """Wall seconds of the plain-Keras floor for a class of ``n`` MLPs: one process, Keras imported and the data
    loaded once, the same model trained and evaluated ``n`` times on the same budget."""
    seconds, proc = run_timed([sys.executable, "-c", FLOOR, json.dumps(floor_settings(course, profile, seed, n))], REPO)
    if proc.returncode != 0:
        fail("the plain-Keras class floor", proc)
    return seconds


# -- check versus floor ---------------------------------------------------------------------------------------

def check_vs_floor(course, repeat: int, *, profile: str, seed: int) -> dict:
    deepgrade_bin = str(Path(sys.executable).parent / "deepgrade")
    check_cmd = [deepgrade_bin, "check", "mlp", "solutions/mlp/mlp.ipynb", "--seed", str(seed),
                 "--profile", profile, "--json"]
    cfg = floor_settings(course, profile, seed)
    floor_cmd = [sys.executable, "-c", FLOOR, json.dumps(cfg)]
    checks, floors = [], []
    for _ in range(repeat):
        seconds, proc = run_timed(check_cmd, REPO)
        try:
            report = json.loads(proc.stdout)
        except json.JSONDecodeError:
            fail("`deepgrade check mlp`", proc)
        if proc.returncode not in (0, 1):
            fail("`deepgrade check mlp`", proc)
        checks.append({"wall": seconds, "rc": proc.returncode, "score": report.get("score"),
                       "max_score": report.get("max_score"), **report.get("environment", {})})
        seconds, proc = run_timed(floor_cmd, REPO)
        if proc.returncode != 0:
            fail("the plain-Keras floor", proc)
        floors.append({"wall": seconds, **json.loads(proc.stdout.strip().splitlines()[-1])})
    return {"check_cmd": check_cmd, "cfg": cfg, "checks": checks, "floors": floors}


# -- main -----------------------------------------------------------------------------------------------------

def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-exercise", type=int, default=2, metavar="K", help="submissions per exercise (2)")
    parser.add_argument("--exercises", nargs="+", default=ALL_EXERCISES, choices=ALL_EXERCISES,
                        help="exercises to grade (all five)")
    parser.add_argument("--workers", default="1,2", help="deepgrade worker counts, comma-separated (1,2)")
    parser.add_argument("--seed", type=int, default=1, help="training seed for every grade (1)")
    parser.add_argument("--profile", default="smoke", choices=["smoke", "full"], help="training budget (smoke)")
    parser.add_argument("--repeat", type=int, default=3, help="check/floor runs each, interleaved (3)")
    parser.add_argument("--rounds", type=int, default=1, help="timed class runs per variant; medians printed (1)")
    parser.add_argument("--skip-class", action="store_true", help="only the check-versus-floor part (5)")
    parser.add_argument("--skip-check", action="store_true", help="only the class parts (1-4)")
    parser.add_argument("--quick", action="store_true", help="mlp only, K=2, workers 1,2, repeat 2")
    args = parser.parse_args(argv)
    if args.quick:
        args.exercises, args.per_exercise, args.workers, args.repeat = ["mlp"], 2, "1,2", 2
    args.workers = sorted({int(w) for w in str(args.workers).split(",") if w.strip()})
    if not args.workers or min(args.workers) < 1 or args.per_exercise < 1 or args.repeat < 1 or args.rounds < 1:
        parser.error("--workers, --per-exercise, --repeat and --rounds must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # also for the Dask workers this process starts
    os.chdir(REPO)
    from importlib import metadata

    from deepgrade.course import load_course
    from deepgrade.grader.environment import package_version

    course = load_course(REPO)
    n = len(args.exercises) * args.per_exercise
    began = time.monotonic()
    print("deepgrade batch benchmark")
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"machine: {os.cpu_count()} CPUs (os.cpu_count), {platform.machine()}, {platform.platform()}, "
          f"Python {platform.python_version()}, keras {metadata.version('keras')}, "
          f"tensorflow {next((package_version(d) for d in ('tensorflow-cpu', 'tensorflow') if package_version(d)), '?')}, "
          f"nbgrader {metadata.version('nbgrader')}")
    print(f"settings: exercises {' '.join(args.exercises)}; {args.per_exercise} per exercise (N={n}); "
          f"workers {','.join(map(str, args.workers))}; seed {args.seed}; profile {args.profile}; "
          f"rounds {args.rounds}; repeat {args.repeat}")
    sys.stdout.flush()

    scratch = Path(tempfile.mkdtemp(prefix="deepgrade-bench-"))
    try:
        if not args.skip_class:
            class_part(course, args, scratch, n)
        if not args.skip_check:
            check_part(course, args)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"\ntotal benchmark time: {time.monotonic() - began:.0f} s")
    return 0



def class_part(course, args, scratch: Path, n: int) -> None:
    template = scratch / "template"
    used = prepare_class(course, template, args.exercises, args.per_exercise, profile=args.profile, seed=args.seed)
    print("submissions: " + "; ".join(f"{ex} from {src}" for ex, src in used.items()))
    sys.stdout.flush()

    serial_walls, serial_reports, serial_scores, floor_walls = [], [], [], []
    with_floor = args.exercises == ["mlp"]  # the floor trains the MLP: a class of MLPs only
    walls: dict[int, list[float]] = {w: [] for w in args.workers}
    items: dict[int, list[dict]] = {w: [] for w in args.workers}
    scores: dict[int, list[tuple]] = {w: [] for w in args.workers}
    for r in range(args.rounds):
        folder = fresh_copy(template, scratch, f"serial-{r}")
        serial_walls.append(serial_nbgrader(folder, args.exercises))
        serial_reports += stored_reports(folder)
        serial_scores.append(recorded_total(folder, args.exercises))
        print(f"  round {r + 1}: nbgrader serial {serial_walls[-1]:.1f} s", end="")
        shutil.rmtree(folder)
        for w in args.workers:
            folder = fresh_copy(template, scratch, f"deepgrade-w{w}-{r}")
            wall, got = deepgrade_batch(course, folder, args.exercises, w, profile=args.profile, seed=args.seed)
            walls[w].append(wall)
            items[w] += got
            scores[w].append(recorded_total(folder, args.exercises))
            print(f"; deepgrade W={w} {wall:.1f} s", end="")
            shutil.rmtree(folder)
        if with_floor:
            floor_walls.append(class_floor(course, n, profile=args.profile, seed=args.seed))
            print(f"; plain-Keras floor {floor_walls[-1]:.1f} s", end="")
        print()
        sys.stdout.flush()

    def score_text(totals):
        s, m, c = totals[-1]
        return f"{s:g}/{m:g} ({c} recorded)"

    serial = median(serial_walls)
    print(f"\n1-2. Grading the class: N={n} correct submissions ({', '.join(args.exercises)}), "
          f"{'median of ' + str(args.rounds) + ' rounds' if args.rounds > 1 else 'one round'}")
    floor = median(floor_walls)

    def versus(wall: float) -> str:
        return f"{wall / floor:.2f}x" if floor_walls else "-"

    rows = [["nbgrader autograde, serial", fmt(serial), fmt(serial / n), versus(serial), score_text(serial_scores)]]
    rows += [[f"deepgrade autograde, W={w}", fmt(median(walls[w])), fmt(median(walls[w]) / n), versus(median(walls[w])),
              score_text(scores[w])] for w in args.workers]
    if floor_walls:
        rows.append([f"plain-Keras floor ({n} MLPs, one process)", fmt(floor), fmt(floor / n), "1.00x",
                     "(the same model, budget and seed)"])
    print(table(["run", "wall s", "per submission s", "/ floor", "gradebook points"], rows))
    print("  (nbgrader: one `nbgrader autograde EX --force` subprocess per exercise, each paying its own Python and "
          "nbgrader start; deepgrade: the API in this process, Classroom + one autograde_all() over the exercises, "
          "starting its own local Dask pool)")

    print("\n3. Fixed overhead per submission inside deepgrade (task seconds - train_seconds - evaluate_seconds)")
    rows = []
    for w in args.workers:
        got = items[w]
        warm = [overhead(i) for i in got if i["warm"]]
        cold = [overhead(i) for i in got if not i["warm"]]
        rows.append([f"W={w}", str(len(got)), fmt(median(map(overhead, got))), fmt(mean(map(overhead, got))),
                     f"{fmt(median(warm))} (n={len(warm)})", f"{fmt(median(cold))} (n={len(cold)})",
                     fmt(median(i["seconds"] for i in got)), fmt(median(i["train"] for i in got)),
                     fmt(median(i["evaluate"] for i in got)), fmt(median(i["sandbox"] for i in got))])
    if serial_reports:
        envs = [r.get("environment", {}) for r in serial_reports]
        cost = [float(e.get("grade_seconds", 0) or 0) - float(e.get("train_seconds", 0) or 0)
                - float(e.get("evaluate_seconds", 0) or 0) for e in envs]
        rows.append(["nbgrader serial*", str(len(envs)), fmt(median(cost)), fmt(mean(cost)), "-", "-",
                     fmt(median(float(e.get("grade_seconds", 0) or 0) for e in envs)),
                     fmt(median(float(e.get("train_seconds", 0) or 0) for e in envs)),
                     fmt(median(float(e.get("evaluate_seconds", 0) or 0) for e in envs)),
                     fmt(median(float(e.get("sandbox_seconds", 0) or 0) for e in envs))])
    print(table(["run", "items", "median s", "mean s", "warm median s", "cold median s", "task s (med)",
                 "train s (med)", "evaluate s (med)", "sandbox s (med)"], rows))
    if serial_reports:
        print("  * nbgrader serial, from its stored reports: grade_seconds (the grader process) instead of the task")
    if len(args.exercises) > 1:
        header = ["exercise", *(f"W={w} median s" for w in args.workers)]
        rows = [[ex, *(fmt(median(overhead(i) for i in items[w] if i["exercise"] == ex)) for w in args.workers)]
                for ex in args.exercises]
        print("  overhead by exercise (transfer's gain baseline and fine-tuning trainings are not in train_seconds, "
              "so they count here):")
        print(table(header, rows, indent="    "))
    problems = [(w, i["exercise"], i["error"]) for w in args.workers for i in items[w]
                if i["error"] or not i["finished"] or i["score"] < i["max_score"]]
    for w, ex, error in problems:
        print(f"  ! W={w} {ex}: not full marks or not finished: {error}")

    print("  class overhead per submission, all in (W x wall - the trainings' and evaluations' seconds) / N:")
    for w in args.workers:
        work = sum(i["train"] + i["evaluate"] for i in items[w]) / max(1, args.rounds)
        print(f"    W={w}: {fmt((w * median(walls[w]) - work) / n, 2)} s")

    print("\n4. Speedup")
    base = median(walls[1]) if 1 in walls else float("nan")
    rows = []
    for w in args.workers:
        wall = median(walls[w])
        throughput = base / wall if 1 in walls else float("nan")
        rows.append([f"W={w}", f"{fmt(serial / wall, 2)}x", f"{fmt(throughput, 2)}x", f"{0.8 * w:.2f}x",
                     "-" if throughput != throughput else ("yes" if throughput >= 0.8 * w else "no")])
    print(table(["deepgrade", "serial nbgrader / deepgrade", "throughput vs W=1", "0.8 x W target", "meets"], rows))
    print("\n   goals (issue: class speed):")
    best = min(median(walls[w]) for w in args.workers)
    if floor_walls:
        print(f"   - class of {n} distinct MLP notebooks, fastest deepgrade / floor: {best / floor:.2f}x "
              f"(goal <= 1.3x: {'met' if best / floor <= 1.3 else 'not met'})")
    for w in args.workers:
        gain = serial / median(walls[w])
        goal = f" (goal >= 1.2x: {'met' if gain >= 1.2 else 'not met'})" if w == 2 else ""
        print(f"   - deepgrade autograde W={w} against serial nbgrader autograde: {gain:.2f}x{goal}")
    sys.stdout.flush()


def check_part(course, args) -> None:
    budget = course.profile("mlp", args.profile)
    compile_ = course.exercise("mlp").compile
    result = check_vs_floor(course, args.repeat, profile=args.profile, seed=args.seed)
    checks, floors = result["checks"], result["floors"]
    print(f"\n5. `deepgrade check` versus a plain-Keras floor: mlp, profile {args.profile} "
          f"({budget.train_size or 60000:,} training images, {budget.epochs} epochs, batch {budget.batch_size}, "
          f"{compile_.optimizer}, {compile_.loss}), seed {args.seed}; {args.repeat} runs each, interleaved")
    print(f"  check: {shlex.join(['deepgrade', *result['check_cmd'][1:]])}")
    print("  floor: python -c FLOOR (import keras, fashion_mnist.load_data(), the solution's MLP, fit on the same "
          "seeded subset, predict on the 10,000 test images)")
    check_wall, floor_wall = median(c["wall"] for c in checks), median(f["wall"] for f in floors)
    rows = [["deepgrade check", ", ".join(fmt(c["wall"]) for c in checks), fmt(check_wall),
             fmt(median(c.get("train_seconds", 0) for c in checks), 2),
             fmt(median(c.get("evaluate_seconds", 0) for c in checks), 2),
             f"{checks[-1]['score']:g}/{checks[-1]['max_score']:g} (exit {checks[-1]['rc']})"],
            ["plain-Keras floor", ", ".join(fmt(f["wall"]) for f in floors), fmt(floor_wall),
             fmt(median(f["fit_seconds"] for f in floors), 2), fmt(median(f["evaluate_seconds"] for f in floors), 2),
             f"test accuracy {floors[-1]['test_accuracy']:.4f}"]]
    print(table(["", "runs s", "median s", "fit s (med)", "evaluate s (med)", "result"], rows))
    print(f"  inside check (median): grade_seconds {fmt(median(c.get('grade_seconds', 0) for c in checks), 2)}, "
          f"sandbox_seconds {fmt(median(c.get('sandbox_seconds', 0) for c in checks), 2)}; floor setup (imports, "
          f"data, model) {fmt(median(f['setup_seconds'] for f in floors), 2)} s")
    ratio = check_wall / floor_wall
    print(f"  ratio check / floor: {ratio:.2f} (goal <= 1.1: {'met' if ratio <= 1.1 else 'not met'})")
    print("  (the grader's evaluate also predicts on the training subset, for the train accuracy; the floor predicts "
          "on the test images only)")
    sys.stdout.flush()


if __name__ == "__main__":
    raise SystemExit(main())
