"""``deepgrade calibrate``: train the reference, the naive baselines and the answers students give under N seeds,
propose thresholds.

The reference, each baseline and each answer (course.yml ``answers:``) are built once in the student's sandbox;
each seed's training then goes through the same trusted grader as a student's submission (a pool of the batch's
persistent grader workers, ``--workers``), so the numbers are the ones a grade is made of, on the grader's backend
(``--backend``). Each seed is one training (no retry): from them, the reference's false-fail rate, each baseline's
false-pass rate and how often each answer gets its verdict (:class:`Verdict`) under the retry rule
(:mod:`deepgrade.grader.run`), with 95% bounds. The result is printed and
written to docs/calibration.md, in a section per exercise, profile and backend that a later run replaces.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..course import LoadedCourse, write_submission
from ..errors import ConfigError
from ..protocol import Submission
from .records import (
    MEASURED,
    RECORDS,
    SAME,
    Recorder,
    add_records,
    from_records,
    read_records,
    records_path,
    render,
    section_files,
)
from .rule import (
    ANSWER,
    BASELINE,
    LOWER_IS_BETTER,
    MARGIN,
    METRIC_CHECK,
    REFERENCE,
    SPREAD,
    TARGET,
    Rate,
    Runs,
    Verdict,
    false_fail,
    false_pass,
    models_of,
    propose,
    propose_by_rule,
    rates,
    upper_bound,
)
from .section import _seeds, markdown, write_section

__all__ = [
    "ANSWER", "BASELINE", "LOWER_IS_BETTER", "MARGIN", "MEASURED", "METRIC_CHECK", "RECORDS", "REFERENCE", "SAME",
    "SPREAD", "TARGET", "Model", "Rate", "Recorder", "Runs", "Verdict", "_seeds", "add_records", "build_models",
    "calibrate", "false_fail", "false_pass", "from_records", "models_of", "markdown", "propose", "propose_by_rule", "rates", "read_records", "records_path", "render",
    "section_files", "upper_bound", "write_section",
]


@dataclass(frozen=True)
class Model:
    """A model calibration trains: the reference solution, a baseline or an answer students give, built once in the
    student's sandbox."""

    name: str
    submission: Submission
    fails: tuple[str, ...] = ()


def build_models(course: LoadedCourse, exercise: str, folder: Path,
                 progress: Callable[[str], None] = lambda line: None, only: list[str] | None = None) -> list[Model]:
    """The reference, every baseline and every answer of ``exercise``, each run once in the student's sandbox;
    their model files and submissions are kept in ``folder/<exercise>/<name>/`` and reused from there when
    present (a GPU machine without TensorFlow or bubblewrap grades the models another machine built)."""
    from ..grader.run import build_submission

    models = []
    for name, (answer, fails) in models_of(course.exercise(exercise)).items():
        if only is not None and name not in only:
            continue
        source = course.source_notebook(exercise) if answer is None else course.root / answer
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


class _Found:
    """The trainings of a calibration run as they end: each kept at once (``keep``), the first problem stops it."""

    def __init__(self, total: int, progress: Callable[[str], None], keep: Callable[[str, int, dict, dict], None]):
        self.total, self.progress, self.keep = total, progress, keep
        self.found: dict[tuple[str, int], dict] = {}
        self.environment: dict = {}
        self.problems: list[str] = []
        self.out_of_time = False

    def take(self, model: Model, seed: int, report) -> None:
        metrics = report.environment.get("metrics")
        if report.environment.get("grader_errors"):
            self.problems.append(f"{model.name}, seed {seed}: the grader failed on "
                                 f"{', '.join(report.environment['grader_errors'])}: "
                                 + "; ".join(c.message for c in report.checks if not c.passed))
            return
        if not metrics:
            self.problems.append(f"{model.name} produced no metrics under seed {seed}: "
                                 + "; ".join(c.message for c in report.checks))
            return
        self.found[(model.name, seed)] = {"metrics": metrics, "untrained_failures": sorted(
            c.name for c in report.checks if not c.trains and not c.passed)}
        self.environment.update(report.environment)
        try:
            self.keep(model.name, seed, self.found[(model.name, seed)], report.environment)
        except ConfigError as exc:  # e.g. the records measure something else: stop at once
            self.problems.append(str(exc))
            return
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        self.progress(f"{model.name}, seed {seed} ({len(self.found)}/{self.total}, "
                      f"{report.environment.get('grade_seconds', '?')} s): {shown}")

    def spent(self, deadline: float | None) -> bool:
        """Whether the time budget is spent (said once): no training starts after ``deadline`` (monotonic)."""
        import time

        if deadline is None or time.monotonic() < deadline:
            return False
        if not self.out_of_time:
            self.progress("the time budget is spent: no new training starts (the records keep every one that ended)")
            self.out_of_time = True
        return True

    def result(self) -> tuple[dict[tuple[str, int], dict], dict]:
        if self.problems:
            raise ConfigError(self.problems[0])
        return self.found, self.environment


def _measure(course: LoadedCourse, exercise: str, models: list[Model], profile: str, seeds: list[int],
             progress: Callable[[str], None], workers: int = 1,
             keep: Callable[[str, int, dict, dict], None] = lambda model, seed, result, environment: None,
             deadline: float | None = None) -> tuple[dict[tuple[str, int], dict], dict]:
    """Every model under every seed, every check, one training each (no retry), on ``workers`` grader workers
    (the batch's persistent graders, each in its own jail where one can be made); ``keep(model, seed, result,
    environment)`` hears of each training as it ends (a run stopped half-way keeps what it trained); no training
    starts after ``deadline`` (time.monotonic()). Returns ({(model, seed): {"metrics": {...},
    "untrained_failures": [checks it failed without training]}}, the last grade's environment)."""
    import queue
    import threading

    from ..grader.isolated import isolation_for
    from ..grader.worker import GraderWorker

    jobs: queue.Queue = queue.Queue()
    for model in models:
        for seed in seeds:
            jobs.put((model, seed))
    found = _Found(len(models) * len(seeds), progress, keep)
    isolated = isolation_for(course, others=False).ok
    threads = max(1, (os.cpu_count() or 1) // workers)
    lock = threading.Lock()

    def serve() -> None:
        with GraderWorker(course, jailed=isolated, threads=threads, gpu_share=workers) as worker:
            while not found.problems and not found.spent(deadline):
                try:
                    model, seed = jobs.get_nowait()
                except queue.Empty:
                    return
                try:
                    report = worker.grade(exercise, model.submission, profile=profile, seed=seed, retry=False)
                except Exception as exc:  # noqa: BLE001 - said once, the run stops
                    found.problems.append(f"{model.name}, seed {seed}: {exc}")
                    return
                with lock:
                    found.take(model, seed, report)

    pool = [threading.Thread(target=serve, daemon=True) for _ in range(max(1, workers))]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return found.result()


def _measure_together(course: LoadedCourse, exercise: str, models: list[Model], profile: str, seeds: list[int],
                      progress: Callable[[str], None], batch: int,
                      keep: Callable[[str, int, dict, dict], None] = lambda model, seed, result, environment: None,
                      deadline: float | None = None) -> tuple[dict[tuple[str, int], dict], dict]:
    """As :func:`_measure`, in this process on the JAX backend: each model's seeds in groups of ``batch``, each
    group trained at once (:func:`deepgrade.grader.seeds.together`: one vmapped program), then each seed's grade
    made on its own training. The models are the course's own (the reference, its baselines and its answers),
    graded here without the grader's jail."""
    import keras

    from ..grader import grade
    from ..grader.seeds import together

    if keras.backend.backend() != "jax":
        raise ConfigError(f"calibrate --batch trains seeds together on the JAX backend: expected KERAS_BACKEND=jax. "
                          f"Received: {keras.backend.backend()}. Run it with --backend jax.")
    found = _Found(len(models) * len(seeds), progress, keep)
    for model in models:
        for at in range(0, len(seeds), batch):
            if found.problems or found.spent(deadline):
                return found.result()
            group = seeds[at:at + batch]
            with together(group) as company:
                for seed in group:
                    found.take(model, seed, grade(course, exercise, model.submission, profile=profile, seed=seed,
                                                  retry=False))
            for why in sorted(set(company.said)):
                progress(f"{model.name}: a training of seeds {group[0]}-{group[-1]} ran one seed at a time: {why}")
    return found.result()


def calibrate(course: LoadedCourse, exercise: str, seeds: int, profile: str,
              progress: Callable[[str], None] = lambda line: None, *, workers: int = 1,
              models: Path | None = None, first_seed: int = 0, only: list[str] | None = None,
              fresh: bool = False, record: bool = True, batch: int = 0, budget: float | None = None) -> dict:
    """Train the reference, every baseline and every answer (``only``: those named, "reference solution", a
    baseline's or an answer's name) under seeds first_seed.. (``seeds`` of them), once each; ``progress`` hears
    of each run. The trainings are
    added to the section's records (docs/calibration/, :func:`add_records`; ``fresh``: the old ones dropped),
    and the result is computed from all of them (``record`` False: from this run's alone, nothing kept).
    ``models``: where the built models are kept (default: a temporary folder). ``batch``: train that many seeds
    at once, in this process, on JAX (:func:`_measure_together`). ``budget``: seconds after which no training
    starts (the records keep every one that ended)."""
    import time

    deadline = time.monotonic() + budget if budget is not None else None
    course.profile(exercise, profile)
    names = list(models_of(course.exercise(exercise)))
    wanted = [_model_name(name, names) for name in only] if only else None
    seed_list = list(range(first_seed, first_seed + seeds))
    if not record and wanted is not None and "reference solution" not in wanted:
        raise ConfigError("calibrate --no-write computes the result from this run alone, which needs the reference: "
                          f"expected --only 'reference solution' among the models. Received: --only {only}. Add it, "
                          "or drop --no-write to add these trainings to the section's records.")
    with tempfile.TemporaryDirectory(prefix="deepgrade-calibrate-") as tmp:
        built = build_models(course, exercise, models or Path(tmp), progress, only=wanted)
        recorder = Recorder(course.root if record else Path(tmp), exercise, profile, fresh=fresh or not record)
        if batch > 0:
            _measure_together(course, exercise, built, profile, seed_list, progress, batch, keep=recorder.keep,
                              deadline=deadline)
        else:
            _measure(course, exercise, built, profile, seed_list, progress, workers, keep=recorder.keep,
                     deadline=deadline)
        return from_records(course, exercise, profile, recorder.path)


def _model_name(name: str, names: list[str]) -> str:
    """--only's name as calibrate calls the model ("overfit" -> "baseline: overfit", "dropout" -> "answer:
    dropout"), or a clear error."""
    for candidate in (name, BASELINE + name, ANSWER + name):
        if candidate in names:
            return candidate
    shown = ", ".join(n.removeprefix(BASELINE).removeprefix(ANSWER) for n in names)
    raise ConfigError(f"calibrate --only: expected one of {shown}. Received: {name!r}.")
