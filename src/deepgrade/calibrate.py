"""``deepgrade calibrate``: train the reference and the naive baselines under N seeds, propose thresholds.

The reference and each baseline are built once in the student's sandbox; each seed's training then goes
through the same trusted grader as a student's submission (a pool of the batch's persistent grader workers,
``--workers``), so the numbers are the ones a grade is made of, on the grader's backend (``--backend``). Each
seed is one training (no retry): from them, the reference's false-fail rate and each baseline's false-pass
rate under the retry rule (:mod:`deepgrade.grader.run`), with 95% upper bounds. The result is printed and
written to docs/calibration.md, in a section per exercise, profile and backend that a later run replaces.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from .course import LoadedCourse, write_submission
from .errors import ConfigError
from .grader.run import METRIC_OF
from .protocol import Submission

# metric in the grade's environment -> the check whose threshold it decides
METRIC_CHECK = {metric: check for check, metric in METRIC_OF.items()}  # the retry rule's, inverted
LOWER_IS_BETTER = {"gap"}  # a maximum, not a minimum


@dataclass(frozen=True)
class Runs:
    name: str
    values: dict[str, list[float]]  # metric -> one value per seed
    fails: tuple[str, ...] = ()
    retried: bool = True  # passes every check that does not train: a failed training is trained again
    structural: tuple[str, ...] = ()  # checks it fails on what it is, whatever a training gives (no threshold needed)
    seeds: tuple[int, ...] = ()  # the seed of each value, where known

    def stats(self, metric: str) -> tuple[float, float, float, float]:
        """min, mean, max and standard deviation over the seeds."""
        v = self.values[metric]
        return min(v), statistics.fmean(v), max(v), _spread(v)


@dataclass(frozen=True)
class Model:
    """A model calibration trains: the reference solution or a baseline, built once in the student's sandbox."""

    name: str
    submission: Submission
    fails: tuple[str, ...] = ()


def build_models(course: LoadedCourse, exercise: str, folder: Path,
                 progress: Callable[[str], None] = lambda line: None, only: list[str] | None = None) -> list[Model]:
    """The reference and every baseline of ``exercise``, each run once in the student's sandbox; their model files
    and submissions are kept in ``folder/<exercise>/<name>/`` and reused from there when present (a GPU machine
    without TensorFlow or bubblewrap grades the models another machine built)."""
    from .grader.run import build_submission

    ex = course.exercise(exercise)
    wanted = [("reference solution", course.source_notebook(exercise), ())]
    for name, spec in ex.baselines.items():
        wanted.append((f"baseline: {name}", course.root / spec.answer, tuple(spec.fails)))
    models = []
    for name, source, fails in wanted:
        if only is not None and name not in only:
            continue
        here = Path(folder) / exercise / re.sub(r"\W+", "_", name).strip("_")
        saved = here / "submission.json"
        if saved.is_file():
            submission = Submission.model_validate_json(saved.read_text())
            submission = submission.model_copy(update={"models": {k: here / v for k, v in submission.models.items()}})
        else:
            here.mkdir(parents=True, exist_ok=True)
            notebook = source if source.suffix == ".ipynb" else write_submission(
                course.release_notebook(exercise), source, here / "notebook.ipynb")
            progress(f"{name}: building it in the student's sandbox")
            submission = build_submission(course, exercise, notebook, here)
            if submission.failure or not submission.models:
                raise ConfigError(f"{name} did not build: {submission.failure or submission.errors}")
            relative = {k: Path(v).relative_to(here) for k, v in submission.models.items()}
            saved.write_text(submission.model_copy(update={"models": relative, "log": ""}).model_dump_json(indent=1))
        models.append(Model(name, submission, fails))
    return models


def _measure(course: LoadedCourse, exercise: str, models: list[Model], profile: str, seeds: list[int],
             progress: Callable[[str], None], workers: int = 1,
             keep: Callable[[str, int, dict, dict], None] = lambda model, seed, result, environment: None,
             ) -> tuple[dict[tuple[str, int], dict], dict]:
    """Every model under every seed, every check, one training each (no retry), on ``workers`` grader workers
    (the batch's persistent graders, each in its own jail where one can be made); ``keep(model, seed, result,
    environment)`` hears of each training as it ends (a run stopped half-way keeps what it trained). Returns
    ({(model, seed): {"metrics": {...}, "untrained_failures": [checks it failed without training]}}, the last
    grade's environment)."""
    import queue
    import threading

    from .grader.isolated import isolation_for
    from .grader.worker import GraderWorker

    jobs: queue.Queue = queue.Queue()
    for model in models:
        for seed in seeds:
            jobs.put((model, seed))
    found: dict[tuple[str, int], dict] = {}
    environment: dict = {}
    problems: list[str] = []
    isolated = isolation_for(course, others=False).ok
    threads = max(1, (os.cpu_count() or 1) // workers)
    lock = threading.Lock()

    def serve() -> None:
        with GraderWorker(course, jailed=isolated, threads=threads, gpu_share=workers) as worker:
            while not problems:
                try:
                    model, seed = jobs.get_nowait()
                except queue.Empty:
                    return
                try:
                    report = worker.grade(exercise, model.submission, profile=profile, seed=seed, retry=False)
                except Exception as exc:  # noqa: BLE001 - said once, the run stops
                    problems.append(f"{model.name}, seed {seed}: {exc}")
                    return
                metrics = report.environment.get("metrics")
                with lock:
                    if report.environment.get("grader_errors"):
                        problems.append(f"{model.name}, seed {seed}: the grader failed on "
                                        f"{', '.join(report.environment['grader_errors'])}: "
                                        + "; ".join(c.message for c in report.checks if not c.passed))
                        return
                    if not metrics:
                        problems.append(f"{model.name} produced no metrics under seed {seed}: "
                                        + "; ".join(c.message for c in report.checks))
                        return
                    found[(model.name, seed)] = {"metrics": metrics, "untrained_failures": sorted(
                        c.name for c in report.checks if not c.trains and not c.passed)}
                    environment.update(report.environment)
                    try:
                        keep(model.name, seed, found[(model.name, seed)], report.environment)
                    except ConfigError as exc:  # e.g. the records measure something else: stop at once
                        problems.append(str(exc))
                        return
                    shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
                    progress(f"{model.name}, seed {seed} ({len(found)}/{len(models) * len(seeds)}, "
                             f"{report.environment.get('grade_seconds', '?')} s): {shown}")

    pool = [threading.Thread(target=serve, daemon=True) for _ in range(max(1, workers))]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if problems:
        raise ConfigError(problems[0])
    return found, environment


MARGIN = 0.015  # at least this far below the reference's worst seed
SPREAD = 4.0    # and at least this many standard deviations below the reference's mean


def _round_down(x: float) -> float:
    return math.floor(x * 1000 + 1e-9) / 1000


def _spread(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _must_fail(baselines: list[Runs], metric: str) -> list[Runs]:
    """The baselines a threshold for ``metric`` must fail: those meant to fail its check that do not already
    fail it on what they are (a structural failure needs no threshold)."""
    check = METRIC_CHECK[metric]
    return [b for b in baselines if check in b.fails and check not in b.structural and metric in b.values]


def _no_baseline(baselines: list[Runs], metric: str) -> str:
    """What to say when no baseline constrains a threshold for ``metric``."""
    check = METRIC_CHECK[metric]
    gated = [b.name.removeprefix("baseline: ") for b in baselines if check in b.fails and check in b.structural]
    return (f"no baseline to fail by a threshold ({', '.join(gated)} fail{'s' if len(gated) == 1 else ''} "
            f"`{check}` on what {'it is' if len(gated) == 1 else 'they are'})" if gated else "no baseline to fail")


def propose(reference: Runs, baselines: list[Runs], metric: str = "test_accuracy") -> tuple[float | None, str]:
    """A threshold for ``metric`` that the reference passes on any seed and the baselines meant to fail do not.

    Grades draw a fresh seed, so the calibration seeds are a sample: for a minimum (accuracy, gain,
    fine_tuning) the threshold is the lower of MARGIN below the reference's worst seed and SPREAD standard
    deviations below its mean, rounded down to 0.001 (a correct solution must not fail by chance). A baseline
    that must fail has to stay below it on its best seed, or the two cannot be separated under this budget
    (its spread is not used: a collapsing baseline is bimodal, at chance on some seeds). For a maximum (gap)
    the same, mirrored and rounded up.
    """
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    worse, better = ("above", "below") if sign < 0 else ("below", "above")
    ref = [sign * v for v in reference.values[metric]]
    worst, mean, sd = min(ref), statistics.fmean(ref), _spread(ref)
    threshold = _round_down(min(worst - MARGIN, mean - SPREAD * sd))
    spread = (f"{(mean - threshold) / sd:.1f} standard deviations {worse} its mean" if sd else
              "no spread measured (one seed, or all equal): calibrate with more seeds")
    why = f"{worst - threshold:.4f} {worse} the reference's worst seed, {spread}"
    must_fail = _must_fail(baselines, metric)
    if must_fail:
        reach = max(max(sign * v for v in b.values[metric]) for b in must_fail)
        if threshold <= reach:
            return None, (f"cannot separate: the reference needs a threshold at or {worse} {sign * threshold:.3f} to "
                          f"pass on any seed, and a baseline that must fail reaches {sign * reach:.4f}; raise the "
                          "profile's budget")
        why += f", {threshold - reach:.4f} {better} the best baseline"
    else:
        why += "; " + _no_baseline(baselines, metric)
    if metric == "gain" and threshold <= 0:
        return None, f"the reference's gain would need a threshold of {threshold:+.3f}: the pretrained base does not clearly help"
    return sign * threshold + 0.0, why


def propose_by_rule(reference: Runs, baselines: list[Runs], metric: str = "test_accuracy",
                    checks: int = 1) -> tuple[float | None, str]:
    """The threshold the retry rule needs: the reference loses a grade to this check at most TARGET / ``checks``
    of the time (95% upper bound, ``checks`` training checks sharing the target), and every baseline that must
    fail it does on every seed. Of the thresholds that do both, the middle one (rounded to 0.001), so both
    errors keep room, but no more than MARGIN below the reference's allowed tail (a baseline far below must not
    drag the threshold down to it); with no baseline to fail, the lower of that bound and :func:`propose`'s.
    Too few seeds to show it (fewer than about 100): :func:`propose`'s margin rule instead."""
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    ref = sorted(sign * v for v in reference.values[metric])
    n = len(ref)
    allowed = max((k for k in range(n) if upper_bound(k, n) ** 2 <= TARGET / checks), default=None)
    if allowed is None:
        threshold, why = propose(reference, baselines, metric)
        return threshold, f"{n} seeds are too few to show the retry rule's bound, so the margin rule: {why}"
    high = _round_down(ref[allowed])  # at most `allowed` seeds of the reference below it
    must_fail = _must_fail(baselines, metric)
    reach = max((sign * v for b in must_fail for v in b.values[metric]), default=None)
    low = math.ceil((reach + 0.0005) * 1000 - 1e-9) / 1000 if reach is not None else None
    worse = "above" if sign < 0 else "below"
    if low is not None and low > high:
        return None, (f"cannot separate: the reference needs a threshold at or {worse} {sign * high:.3f} and a "
                      f"baseline that must fail reaches {sign * reach:.4f}; raise the profile's budget")
    if low is not None:  # the middle of the room, but no further than MARGIN from the reference's allowed tail
        threshold = max(_round_down((low + high) / 2), _round_down(high - MARGIN))
    else:  # nothing to separate from: no closer to the reference's tail than the margin rule either
        margin = propose(reference, [], metric)[0]
        threshold = min(high, sign * margin) if margin is not None else high
    if metric == "gain" and threshold <= 0:
        return None, f"the reference's gain would need a threshold of {threshold:+.3f}: the pretrained base does not clearly help"
    kept = sum(v < threshold for v in ref)
    said = (f"{kept} of {n} reference seeds {worse} it (at most {allowed} allowed: "
            f"{upper_bound(allowed, n) ** 2:.1e} with the retry, 95% bound)")
    said += (f"; baselines that must fail reach {sign * reach:.4f}; room {sign * low:.3f}..{sign * high:.3f}"
             if reach is not None else "; " + _no_baseline(baselines, metric))
    return sign * threshold + 0.0, said


def calibrate(course: LoadedCourse, exercise: str, seeds: int, profile: str,
              progress: Callable[[str], None] = lambda line: None, *, workers: int = 1,
              models: Path | None = None, first_seed: int = 0, only: list[str] | None = None,
              fresh: bool = False, record: bool = True) -> dict:
    """Train the reference and every baseline (``only``: those named, "reference solution" or a baseline's name)
    under seeds first_seed.. (``seeds`` of them), once each; ``progress`` hears of each run. The trainings are
    added to the section's records (docs/calibration/, :func:`add_records`; ``fresh``: the old ones dropped),
    and the result is computed from all of them (``record`` False: from this run's alone, nothing kept).
    ``models``: where the built models are kept (default: a temporary folder)."""
    course.profile(exercise, profile)
    names = ["reference solution", *(f"baseline: {name}" for name in course.exercise(exercise).baselines)]
    wanted = [_model_name(name, names) for name in only] if only else None
    seed_list = list(range(first_seed, first_seed + seeds))
    if not record and wanted is not None and "reference solution" not in wanted:
        raise ConfigError("calibrate --no-write computes the result from this run alone, which needs the reference: "
                          f"expected --only 'reference solution' among the models. Received: --only {only}. Add it, "
                          "or drop --no-write to add these trainings to the section's records.")
    with tempfile.TemporaryDirectory(prefix="deepgrade-calibrate-") as tmp:
        built = build_models(course, exercise, models or Path(tmp), progress, only=wanted)
        recorder = Recorder(course.root if record else Path(tmp), exercise, profile, fresh=fresh or not record)
        _measure(course, exercise, built, profile, seed_list, progress, workers, keep=recorder.keep)
        return from_records(course, exercise, profile, recorder.path)


def _machine(environment: dict) -> str:
    threads = environment.get("threads")
    return (f"{environment.get('device_name') or environment.get('device', '?')} ({environment.get('cpu_count', '?')} "
            f"cores{'' if threads is None else f', {threads} thread(s) a grade'})")


def _model_name(name: str, names: list[str]) -> str:
    """--only's name as calibrate calls the model ("overfit" -> "baseline: overfit"), or a clear error."""
    for candidate in (name, f"baseline: {name}"):
        if candidate in names:
            return candidate
    shown = ", ".join(n.removeprefix("baseline: ") for n in names)
    raise ConfigError(f"calibrate --only: expected one of {shown}. Received: {name!r}.")


# -- the records a section is computed from ----------------------------------------------------------
# docs/calibration/<exercise>-<profile>[-<backend>-<device>].jsonl: a line per calibration run ({"run": id,
# "date", "environment"}) and a line per training ({"run", "model", "seed", "metrics", "untrained_failures"});
# a later line for the same model and seed replaces an earlier one. Runs add to it (more seeds, another
# baseline) as long as they measure the same thing (MEASURED); `calibrate --render` recomputes the section.
RECORDS = Path("docs") / "calibration"
MEASURED = ("backend", "device", "device_name", "platform", "cpu_count", "threads", "versions", "train_size", "epochs")
SAME = ("backend", "device", "versions", "train_size", "epochs")  # what runs that add up must share


class Recorder:
    """Writes a calibration run's trainings to the section's records as they end: the first one decides the
    records file (by its backend and device) and is checked against the runs already there, so a run that would
    not add up stops after one training, kept aside; each later one is appended at once."""

    def __init__(self, root: Path, exercise: str, profile: str, *, fresh: bool = False):
        self.root, self.exercise, self.profile, self.fresh = Path(root), exercise, profile, fresh
        self.path: Path | None = None
        self.run = 0

    def keep(self, model: str, seed: int, result: dict, environment: dict) -> None:
        found = {(model, seed): result}
        if self.path is None:
            measured = {key: environment[key] for key in MEASURED if key in environment}
            self.path = records_path(self.root, self.exercise, self.profile, measured)
            add_records(self.path, measured, found, fresh=self.fresh)
            self.run = max(read_records(self.path)[0])
            return
        with self.path.open("a") as out:
            out.write(json.dumps({"run": self.run, "model": model, "seed": seed, **result}) + "\n")


def section_files(root: Path, exercise: str, profile: str) -> list[Path]:
    """The records files of ``exercise`` and ``profile``, one per backend and device (not a refused run's)."""
    name = re.compile(rf"{re.escape(exercise)}-{re.escape(profile)}(-[a-z0-9]+-[a-z0-9]+)?")
    return sorted(p for p in (Path(root) / RECORDS).glob("*.jsonl") if name.fullmatch(p.stem))


def records_path(root: Path, exercise: str, profile: str, environment: dict) -> Path:
    key = _backend_key({"environment": environment}).replace(":", "-")
    return Path(root) / RECORDS / f"{exercise}-{profile}{key}.jsonl"


def read_records(path: Path) -> tuple[dict[int, dict], dict[tuple[str, int], dict]]:
    """The records of ``path``: (runs by id, trainings by (model, seed), the last line for each winning)."""
    runs: dict[int, dict] = {}
    trainings: dict[tuple[str, int], dict] = {}
    text = Path(path).read_text()
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if "model" in record:
                dict(record["metrics"])
                trainings[(record["model"], int(record["seed"]))] = record
            else:
                dict(record["environment"]), str(record["date"])
                runs[int(record["run"])] = record
        except (ValueError, KeyError, TypeError) as exc:
            if number == len(lines) and not text.endswith("\n"):
                break  # a line cut off by a run stopped while writing it: that training was never recorded
            raise ConfigError(f"{path}, line {number}: expected a calibration record (JSON with run, date and "
                              "environment for a run; run, model, seed and metrics for a training). Received: "
                              f"{line[:120]!r} ({type(exc).__name__}: {exc}). Mend or delete the line.") from None
    return runs, trainings


def add_records(path: Path, environment: dict, found: dict[tuple[str, int], dict], *, fresh: bool = False,
                when: str | None = None) -> None:
    """Append one run's trainings to ``path`` (a run of another environment is refused: its numbers would not
    add up; ``fresh`` starts the records over)."""
    path = Path(path)
    runs = {} if fresh or not path.is_file() else read_records(path)[0]
    for run in runs.values():
        differs = [k for k in SAME if run["environment"].get(k) != environment.get(k)]
        if differs:  # the trainings are kept aside, never lost (a file per refused run)
            stamp = datetime.now().strftime("%Y%m%dT%H%M%S%f")
            aside = path.with_name(f"{path.stem}.refused-{stamp}.jsonl")
            add_records(aside, environment, found, fresh=True, when=when)
            said = ", ".join(f"{k}={run['environment'].get(k)!r}" for k in differs)
            now = ", ".join(f"{k}={environment.get(k)!r}" for k in differs)
            raise ConfigError(f"{path}: run {run['run']} measured {said}; this run measures {now}. Expected the same "
                              "backend, device, versions and budget for trainings that add up. This run's trainings "
                              f"are kept in {aside}: to start the records over with them, move that file to "
                              f"{path.name}; or run again with --fresh.")
    number = max(runs, default=0) + 1
    lines = [{"run": number, "date": when or date.today().isoformat(), "environment": environment}]
    lines += [{"run": number, "model": model, "seed": seed, **result} for (model, seed), result in sorted(found.items())]
    path.parent.mkdir(parents=True, exist_ok=True)
    if fresh or not path.is_file():
        path.write_text("")
    elif path.read_text() and not path.read_text().endswith("\n"):
        path.write_text(path.read_text().rsplit("\n", 1)[0] + "\n")  # drop a line cut off half-way (read_records)
    with path.open("a") as out:  # appended: what is there stays whole if this run stops
        out.write("".join(json.dumps(line) + "\n" for line in lines))


def from_records(course: LoadedCourse, exercise: str, profile: str, path: Path) -> dict:
    """The calibration result of every training in ``path``, at course.yml's current thresholds: what
    docs/calibration.md's section shows (and `calibrate --render` rewrites)."""
    ex = course.exercise(exercise)
    runs_by_id, trainings = read_records(path)
    if not runs_by_id or not trainings:
        raise ConfigError(f"{path}: no trainings recorded. Run `deepgrade calibrate {exercise} --profile {profile}` first.")
    fails = {"reference solution": ()} | {f"baseline: {name}": tuple(spec.fails) for name, spec in ex.baselines.items()}
    runs = []
    for name in [n for n in fails if any(model == n for model, _ in trainings)]:
        mine = sorted((seed, record) for (model, seed), record in trainings.items() if model == name)
        keys = list(dict.fromkeys(key for _, record in mine for key in record["metrics"]))
        for key in keys:
            missing = [seed for seed, record in mine if key not in record["metrics"]]
            if missing:
                raise ConfigError(f"{path}: {name} has {key} on some seeds, not on seeds {_seeds(missing)}. Expected "
                                  "the same metrics on every seed (a check added since?): train those seeds again "
                                  f"(--only, --first-seed) or start over with --fresh.")
        metrics = {key: [record["metrics"][key] for _, record in mine] for key in keys}
        untrained = set().union(*(record.get("untrained_failures", []) for _, record in mine))
        runs.append(Runs(name, metrics, fails[name], not untrained, tuple(sorted(set(fails[name]) & untrained)),
                         tuple(seed for seed, _ in mine)))
    failing = sorted(set().union(*(r.get("untrained_failures", []) for (m, _), r in trainings.items()
                                   if m == "reference solution")))
    if failing:
        raise ConfigError(f"{path}: the reference solution fails {', '.join(failing)} without training, so no "
                          "threshold can make its grade right. Expected a reference that passes every check that "
                          "does not train: fix the solution or the check, then calibrate again with --fresh.")
    if not runs or runs[0].name != "reference solution":
        raise ConfigError(f"{path}: no trainings of the reference solution. Run `deepgrade calibrate {exercise} --profile "
                          f"{profile} --only 'reference solution'` first.")
    used = sorted({int(record["run"]) for record in trainings.values()} & set(runs_by_id))  # runs with a winning line
    latest = runs_by_id[used[-1] if used else max(runs_by_id)]
    environment = {**latest["environment"], "date": ", ".join(sorted({runs_by_id[r]["date"] for r in used}))}
    machines = {_machine(runs_by_id[r]["environment"]) for r in used}
    if len(machines) > 1:
        environment["machines"] = sorted(machines)
    current = course.profile(exercise, profile).thresholds.model_dump()
    trained = [(metric, check) for metric, check in METRIC_CHECK.items() if check in ex.checks and metric in runs[0].values]
    thresholds = {check: propose_by_rule(runs[0], runs[1:], metric, len(trained)) for metric, check in trained}
    return {"exercise": exercise, "profile": profile, "seeds": list(runs[0].seeds), "runs": runs,
            "thresholds": thresholds, "current": current, "rates": rates(runs, current), "environment": environment}


def render(course: LoadedCourse, exercise: str, profile: str) -> list[dict]:
    """Every section of ``exercise`` and ``profile`` (one per backend and device), recomputed from its records
    at course.yml's current thresholds, training nothing."""
    course.profile(exercise, profile)
    paths = section_files(course.root, exercise, profile)
    if not paths:
        raise ConfigError(f"No calibration records for {exercise} ({profile} profile) in {course.root / RECORDS}. "
                          f"Run `deepgrade calibrate {exercise} --profile {profile}` first.")
    return [from_records(course, exercise, profile, path) for path in paths]


# -- how often the rule errs -------------------------------------------------------------------------
TARGET = 1e-3  # a correct submission may lose points to a seed at most this often


def upper_bound(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound of a rate seen ``k`` times in ``n`` trials (0 of 200: 0.0149)."""
    if n == 0:
        return 1.0
    if k >= n:
        return 1.0

    def cdf(p: float) -> float:  # P(X <= k) for X ~ Binomial(n, p)
        return sum(math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                            + (i * math.log(p) if i else 0.0) + ((n - i) * math.log1p(-p))) for i in range(k + 1))

    lo, hi = k / n, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) > 1 - confidence else (lo, mid)
    return hi


@dataclass(frozen=True)
class Rate:
    """How often a model's grade lands on the wrong side of a check, under the retry rule (grader.run)."""

    k: int            # seeds whose one training was on the wrong side
    n: int
    retried: bool     # whether the model gets a second training (it passes every check that does not train)
    estimate: float   # with the retry
    upper: float      # 95% upper bound of ``estimate``
    structural: bool = False  # the check fails on what the model is, on every seed: no training can pass it

    def said(self) -> str:
        if self.structural:
            return f"fails on what the model is, {self.n}/{self.n} seeds, whatever the training gives"
        return f"{self.k}/{self.n} one training; {self.estimate:.1e} with the retry (95% bound {self.upper:.1e})"


def _fails(metric: str, value: float, threshold: float) -> bool:
    return value > threshold if metric in LOWER_IS_BETTER else value < threshold


def false_fail(run: Runs, thresholds: dict[str, float]) -> Rate:
    """The reference loses a training check's points: its first training fails one and so does the second
    (the reference passes every check that does not train, so it always gets one). Seeds are independent draws."""
    metrics = [(m, thresholds[c]) for m, c in METRIC_CHECK.items() if m in run.values and thresholds.get(c) is not None]
    n = len(next(iter(run.values.values())))
    k = sum(any(_fails(m, run.values[m][i], t) for m, t in metrics) for i in range(n))
    return Rate(k, n, True, (k / n) ** 2, upper_bound(k, n) ** 2)


def false_pass(run: Runs, metric: str, threshold: float) -> Rate:
    """A baseline passes a check it must fail: on its first training or, when it passes the checks that do not
    train (it gets a second training), on the second; never, when it fails the check on what it is."""
    values = run.values[metric]
    n = len(values)
    if METRIC_CHECK[metric] in run.structural:
        return Rate(0, n, run.retried, 0.0, 0.0, structural=True)
    k = sum(not _fails(metric, v, threshold) for v in values)
    q, q_upper = k / n, upper_bound(k, n)
    if run.retried:
        return Rate(k, n, True, 1 - (1 - q) ** 2, 1 - (1 - q_upper) ** 2)
    return Rate(k, n, False, q, q_upper)


def rates(runs: list[Runs], thresholds: dict[str, float | None]) -> dict:
    """The reference's false-fail rate over all its training checks, and each baseline's false-pass rate for each
    check it must fail, at ``thresholds``."""
    reference, baselines = runs[0], runs[1:]
    out = {"reference": false_fail(reference, thresholds), "baselines": {}}
    for run in baselines:
        for metric, check in METRIC_CHECK.items():
            if check in run.fails and metric in run.values and thresholds.get(check) is not None:
                out["baselines"][(run.name, check)] = false_pass(run, metric, thresholds[check])
    return out


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(math.floor(q * (len(ordered) - 1)))))]


def _seeds(seeds: list[int]) -> str:
    """0-199 (200 seeds); a few seeds themselves; runs of consecutive seeds as ranges (0-199, 300-309: 210 seeds)."""
    seeds = sorted(seeds)
    if len(seeds) > 3 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]} ({len(seeds)} seeds)"
    spans: list[list[int]] = []
    for seed in seeds:
        if spans and seed == spans[-1][-1] + 1:
            spans[-1].append(seed)
        else:
            spans.append([seed])
    if all(len(span) < 4 for span in spans):
        return ", ".join(map(str, seeds))
    shown = ", ".join(f"{span[0]}-{span[-1]}" if len(span) > 2 else ", ".join(map(str, span)) for span in spans)
    return f"{shown}: {len(seeds)} seeds"


def markdown(result: dict) -> str:
    env = result["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items())
    seeds = result["seeds"]
    shown = _seeds(seeds) + "".join(f" ({run.name}: seeds {_seeds(run.seeds)})" for run in result["runs"]
                                    if run.seeds and list(run.seeds) != list(seeds))
    device = env.get("device", "?") + (f", {env['device_name']}" if env.get("device_name") else "")
    lines = [
        f"## {result['exercise']}, {result['profile']} profile{_backend_key(result).replace(':', ', ')} "
        "(`deepgrade calibrate`)", "",
        f"Measured {env.get('date') or date.today().isoformat()} on {device} ({env.get('platform', '?')}, "
        f"{env.get('cpu_count', '?')} cores), backend {env.get('backend', '?')}, {versions}; "
        f"seeds {shown}; {env.get('train_size', '?'):,} training images, "
        f"{env.get('epochs', '?')} epochs." if isinstance(env.get("train_size"), int) else
        f"Measured on {device}; seeds {shown}.", "",
        *([f"Runs on more than one machine: {'; '.join(env['machines'])}.", ""] if env.get("machines") else []),
        "| model | metric | min | 1% | mean | max | sd |", "|---|---|---|---|---|---|---|",
    ]
    for run in result["runs"]:
        for metric in run.values:
            lo, mean, hi, sd = run.stats(metric)
            q = _quantile(run.values[metric], 0.01)
            lines.append(f"| {run.name} | {metric} | {lo:.4f} | {q:.4f} | {mean:.4f} | {hi:.4f} | {sd:.4f} |")
    found = result.get("rates")
    if found:
        current = result["current"]
        checks = ", ".join(f"{c} {current[c]}" for m, c in METRIC_CHECK.items()
                           if current.get(c) is not None and m in result["runs"][0].values)
        lines += ["", f"At course.yml's thresholds ({checks}), under the retry rule (a model that passes the checks "
                  "that do not train has a failed check that trains graded again on a second training, under a second "
                  "seed; the better counts):", "",
                  "| model | error | wrong side, one training | second training | rate with the rule | 95% upper bound |",
                  "|---|---|---|---|---|---|"]
        ref: Rate = found["reference"]
        lines.append(f"| reference solution | false fail (any training check) | {ref.k}/{ref.n} | yes | "
                     f"{ref.estimate:.2e} | {ref.upper:.2e} |")
        for (name, check), rate in found["baselines"].items():
            if rate.structural:
                lines.append(f"| {name} | false pass of `{check}` | {rate.k}/{rate.n}: fails on what it is, whatever "
                             "the training gives | no | 0 | 0 (no seed can pass it) |")
                continue
            lines.append(f"| {name} | false pass of `{check}` | {rate.k}/{rate.n} | {'yes' if rate.retried else 'no'} | "
                         f"{rate.estimate:.2e} | {rate.upper:.2e} |")
    lines.append("")
    for check, (threshold, why) in result["thresholds"].items():
        current = result["current"].get(check)
        shown_t = f"**{threshold:.3f}**" if threshold is not None else "**none**"
        lines.append(f"Proposed `{check}` threshold: {shown_t} ({why}); course.yml has {current}.")
    return "\n".join(lines) + "\n"


def _backend_key(result: dict) -> str:
    """'' for TensorFlow on a CPU (the sections written before backends were told apart), else ':jax-gpu' etc."""
    env = result["environment"]
    backend, device = env.get("backend", "tensorflow"), env.get("device", "cpu")
    return "" if (backend, device) == ("tensorflow", "cpu") else f":{backend}-{device}"


def write_section(path: Path, result: dict) -> None:
    """Replace (or append) this exercise and profile's section of docs/calibration.md."""
    key = f"{result['exercise']}:{result['profile']}{_backend_key(result)}"
    begin, end = f"<!-- calibrate {key} -->", f"<!-- /calibrate {key} -->"
    block = f"{begin}\n{markdown(result)}{end}\n"
    text = path.read_text() if path.exists() else "# Calibration\n\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end) + r"\n?", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
