"""Grading as a library call: :func:`grade` runs an exercise's autograder in this process, on a built submission.

The autograder is a pytest module; :func:`grade` runs it with ``pytest.main`` in-process (Keras and the
data are imported and loaded once per process, so a worker grades many submissions without a new
interpreter each), selecting the requested checks by exact test name. Its :class:`GradingRun` is the pytest
plugin object of that session: the fixtures of :mod:`.plugin` read the course, the submission, the profile
and the seed from it, and each check's result lands on it. :func:`grade_notebook` runs the notebook in the
student's sandbox first; ``deepgrade check`` and nbgrader both call it.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import re
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from ..course import LoadedCourse, find_course_root, load_course
from ..errors import ConfigError, GraderError, did_you_mean
from ..protocol import CheckResult, GradeRequest, Report, Submission

RUN = pytest.StashKey["GradingRun"]()
AUTOLOAD = "PYTEST_DISABLE_PLUGIN_AUTOLOAD"
_MODULE_NAME = re.compile(r"^test_(?P<exercise>\w+)\.py$")

# The retry rule (README, "No correct student fails on a seed"): a grade whose model passes every check that does
# not train, but fails a check that trains (having trained and measured it), has the failed checks graded again on
# a second training under a second seed derived from the first; for them the better of the two trainings counts.
# A correct model fails one training with probability p (0 in 200 seeds bounds it at 1.5%, `deepgrade calibrate`
# measures it), both with p squared; a model whose layers are wrong is not trained twice.
METRIC_OF = {"accuracy": "test_accuracy", "gap": "gap", "gain": "gain", "fine_tuning": "finetune_accuracy"}


def second_seed(seed: int) -> int:
    """The retry's seed: a fixed function of the grade's seed, so ``--seed`` reproduces both trainings."""
    return (seed * 7919 + 104729) % 2**31


def check_name(test_name: str) -> str | None:
    """The check a test grades: ``test_parameters`` -> ``parameters``."""
    return test_name[len("test_"):] if test_name.startswith("test_") else None


class GradingRun:
    """One grade in progress: what is graded, under which profile and seed, and the results so far.

    Built with a course and exercise (by :func:`grade`), or from pytest's command line (``from_options``),
    where the exercise is known only once the autograder module is (``bind``).
    """

    def __init__(self, course: LoadedCourse | None, exercise: str | None, submission: Submission | None = None, *,
                 notebook: Path | None = None, entry: str | None = None, profile: str | None = None,
                 seed: int | None = None, only: list[str] | None = None, train: bool = True, retry: bool = True):
        self.course, self.exercise_name = course, exercise
        self.train = train  # False: the checks that train are left out (listed in environment.deferred)
        self.retry = retry  # False: one training only, whatever it gives (calibration measures single trainings)
        self.trains: set[str] = set()  # the checks whose tests train the model (their results depend on the seed)
        self.curves = None  # the training run's curves and confusion matrix, for the feedback
        self._submission, self.notebook = submission, notebook
        self._entry, self._profile_name, self._only = entry, profile, only
        self.seed: int = seed if seed is not None else secrets.randbelow(2**31)
        self.exercise = self.profile = self.profile_name = None
        self.checks: list[str] = []
        self.results: dict[str, CheckResult] = {}
        self.environment: dict[str, Any] = {}
        self.problem: str | None = None  # why no grade can be written (the autograder does not fit course.yml)
        self.started = time.time()
        self._tmp: tempfile.TemporaryDirectory | None = None  # holds the models of a notebook built here
        if course is not None and exercise is not None:
            self._setup()

    @classmethod
    def from_options(cls, config: pytest.Config) -> "GradingRun":
        opt = config.getoption
        model, notebook = opt("--deepgrade-model"), opt("--deepgrade-notebook")
        submission = Submission.of_model(opt("--deepgrade-entry") or "", Path(model).resolve()) if model else None
        run = cls(None, opt("--deepgrade-exercise"), submission, notebook=Path(notebook).resolve() if notebook else None,
                  entry=opt("--deepgrade-entry"), profile=opt("--deepgrade-profile"), seed=opt("--deepgrade-seed"))
        run._course_arg = opt("--deepgrade-course")
        return run

    def bind(self, autograder: Path) -> None:
        """Set up from the autograder's module, when started from pytest's command line."""
        if self.exercise is not None:
            return
        if self.exercise_name is None:
            match = _MODULE_NAME.match(autograder.name)
            if not match:
                raise ConfigError(f"Cannot tell the exercise from the autograder's name: expected test_<exercise>.py. "
                                  f"Received: {autograder.name}. Pass --deepgrade-exercise.")
            self.exercise_name = match["exercise"]
        self.course = load_course(getattr(self, "_course_arg", None) or find_course_root(autograder.parent))
        self._setup()
        if self._submission is not None and "" in self._submission.models:  # a model file given without an entry
            self._submission = Submission.of_model(self.entry, self._submission.models[""])

    def _setup(self) -> None:
        from .environment import default_profile

        self.exercise = self.course.exercise(self.exercise_name)
        self.profile_name = self._profile_name or default_profile()
        self.profile = self.course.profile(self.exercise_name, self.profile_name)
        declared = list(self.exercise.checks)
        unknown = [name for name in self._only or [] if name not in declared]
        if unknown:
            raise ConfigError(f"Unknown check of {self.exercise_name!r}: expected one of {', '.join(declared)}. "
                              f"Received: {unknown[0]!r}.", tip=did_you_mean(unknown[0], declared) or None)
        self.checks = [name for name in declared if self._only is None or name in self._only]

    @property
    def entry(self) -> str:
        return self._entry or self.exercise.entry

    @property
    def submission(self) -> Submission:
        """The submission; from the command line with a notebook, built in the sandbox on first use."""
        if self._submission is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="deepgrade-grader-")
            self._submission = build_submission(self.course, self.exercise_name, self.notebook, Path(self._tmp.name))
        return self._submission

    def base_path(self) -> Path:
        return _base_path(self.course, self.exercise_name)

    def record(self, **metrics: float) -> None:
        """Numbers the grade is made of, kept in ``environment.metrics`` (and read by `deepgrade calibrate`)."""
        self.environment.setdefault("metrics", {}).update({k: round(float(v), 6) for k, v in metrics.items()})

    def mismatch(self, tests: set[str]) -> str | None:
        """Why the autograder's tests and course.yml's checks do not correspond, or None."""
        declared = set(self.exercise.checks)
        unknown = sorted(t for t in tests if t not in declared)
        if unknown:
            return (f"Autograder tests without a check in course.yml: {unknown}. "
                    f"Expected one test_<check> per check in exercises.{self.exercise_name}.checks "
                    f"({sorted(declared)}).")
        missing = sorted(declared - tests)
        if missing:
            return (f"course.yml declares checks with no test in the autograder: {missing}. "
                    f"Add test_{missing[0]} to the autograder or remove the check.")
        return None

    def report(self) -> Report:
        """The grade: a result per requested check, in course.yml's order, and the environment."""
        from .environment import describe

        try:
            self.environment.update(describe())
        except Exception as exc:  # noqa: BLE001 - a grade is never lost for want of its metadata
            self.environment["describe_error"] = f"{type(exc).__name__}: {exc}"
        sub = self._submission
        if sub is not None and sub.isolation is not None:
            self.environment.update(sandbox_seconds=round(sub.seconds, 2), isolation=sub.isolation)
        if sub is not None and (sub.not_run or sub.notes):
            self.environment["notebook"] = {"not_run": sub.not_run or "", "notes": list(sub.notes)}
        self.environment.update(seed=self.seed, grade_seconds=round(time.time() - self.started, 2))
        checks = [self.results[name] for name in self.checks if name in self.results]
        return Report(exercise=self.exercise_name, profile=self.profile_name, checks=checks,
                      environment=self.environment, training=self.curves)

    # -- the in-process pytest session ------------------------------------------------
    def pytest_configure(self, config: pytest.Config) -> None:
        config.stash[RUN] = self

    def execute(self) -> Report:
        autograder = self.course.autograder(self.exercise_name)
        log = io.StringIO()
        try:
            code = _pytest_session([str(autograder)], autograder, self, log)
            if self.problem:
                raise ConfigError(f"{autograder}: {self.problem}")
            missing = [name for name in self.checks if name not in self.results]
            if missing:
                tail = "\n".join(log.getvalue().strip().splitlines()[-15:])
                raise GraderError(f"The autograder {autograder.name} for {self.exercise_name!r} ended (pytest exit "
                                  f"code {int(code)}) without a result for {missing}. Its last output:\n{tail}")
            failed = self.retry_because()
            if failed:
                self._train_again(failed)
            return self.report()
        finally:
            if self._tmp is not None:
                self._tmp.cleanup()

    # -- the retry rule ------------------------------------------------------------------
    def retry_because(self) -> list[str]:
        """The checks that trained, measured and failed, when every check that does not train passed (else, or
        with retries off, none: a model with wrong layers is not trained twice)."""
        if not (self.retry and self.train):
            return []
        metrics = self.environment.get("metrics", {})
        failed = sorted(name for name in self.trains if name in self.results and not self.results[name].passed
                        and METRIC_OF.get(name) in metrics)
        structure = [result for name, result in self.results.items() if name not in self.trains]
        return failed if failed and all(result.passed for result in structure) else []

    def _train_again(self, failed: list[str]) -> None:
        """Grade the ``failed`` checks that train once more under :func:`second_seed` (only those: a check that
        passed keeps its result); for them, keep the training that earns more points."""
        import keras

        seed = second_seed(self.seed)
        keras.backend.clear_session()
        again = GradingRun(self.course, self.exercise_name, self._submission, notebook=self.notebook,
                           entry=self._entry, profile=self.profile_name, seed=seed, only=failed, retry=False)
        second = again.execute()
        first_points = sum(self.results[name].points for name in failed)
        second_points = sum(result.points for result in second.checks)
        counted = "second" if second_points > first_points else "first"
        self.environment["retry"] = {
            "seed": seed, "counted": counted, "because": failed,
            "first": {"points": first_points, "metrics": dict(self.environment.get("metrics", {}))},
            "second": {"points": second_points, "metrics": dict(second.environment.get("metrics", {}))},
        }
        if counted == "first":
            return
        note = (f" (the grader's first training, seed {self.seed}, fell short; this is its second, seed {seed}: "
                "the better of two trainings counts)")
        for result in second.checks:
            self.results[result.name] = result.model_copy(update={"message": result.message + note})
        if again.curves is not None:
            self.curves = again.curves
        metrics, now = self.environment.setdefault("metrics", {}), second.environment.get("metrics", {})
        metrics.update({METRIC_OF[name]: now[METRIC_OF[name]] for name in failed if METRIC_OF[name] in now})
        self.environment["trained_seed"] = seed


def _pytest_session(args: list[str], autograder: Path, plugin, log: io.StringIO) -> int:
    """One in-process pytest session over ``autograder``, with deepgrade's plugin and no other.

    importlib mode with the filesystem root as rootdir: the module is named after its absolute path, so an
    autograder is imported once per process (a warm worker imports it before it forks) and never mistaken
    for another module named test_mlp. Installed plugins are not loaded (hypothesis alone costs 2 s a
    session), nor the exception hooks that collect garbage three times at the end of each session.
    """
    args = [*args, "-q", "--no-header", "--tb=short", "-p", "no:cacheprovider", "-p", "deepgrade.grader.plugin",
            "-p", "no:unraisableexception", "-p", "no:threadexception", "--import-mode=importlib",
            "--rootdir", autograder.anchor, "--confcutdir", str(autograder.parent), "-c", os.devnull,
            "-W", "ignore::DeprecationWarning"]
    saved = os.environ.get(AUTOLOAD)
    os.environ[AUTOLOAD] = "1"
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            return pytest.main(args, plugins=[plugin] if plugin is not None else [])
    finally:
        if saved is None:
            os.environ.pop(AUTOLOAD, None)
        else:
            os.environ[AUTOLOAD] = saved


def prewarm(course: LoadedCourse) -> None:
    """Import every autograder of ``course`` (and what they import) in this process, without grading: a
    worker does it once, before it forks a process per grade."""
    for exercise in course.course.exercises:
        autograder = course.autograder(exercise)
        if autograder.is_file():
            _pytest_session([str(autograder), "--collect-only"], autograder, None, io.StringIO())


def _base_path(course: LoadedCourse, exercise: str) -> Path:
    from ..pretrained import resolve

    return resolve(course.base_handle(exercise))


def student_jail(course: LoadedCourse, exercise: str):
    """The limits, the pretrained base (or None) and the data folder of ``exercise``'s student jail: the
    verified Fashion-MNIST files, which the notebook's stock loader reads (read-only) where graded code needs
    them."""
    from .. import sandbox

    ex = course.exercise(exercise)
    limits = sandbox.Limits.of("student", **ex.sandbox.model_dump())
    return limits, (_base_path(course, exercise) if ex.transfer else None), _verified_data()


@functools.cache
def _verified_data() -> Path:
    """The Keras cache's Fashion-MNIST folder, its four files verified (once per process)."""
    from .data import install

    return install()


def build_submission(course: LoadedCourse, exercise: str, notebook: Path, out: Path, warm=None) -> Submission:
    """Run ``notebook`` in the student's sandbox under the exercise's limits; its models land in ``out``.
    ``warm``: the :class:`deepgrade.sandbox.warm.StudentServer` to run it in (default: this process's)."""
    from .. import sandbox

    ex = course.exercise(exercise)
    limits, base, data = student_jail(course, exercise)
    return sandbox.run_notebook(Path(notebook), [ex.entry, *ex.extra_entries], out, limits, options=ex.options,
                                base=base, data=data, warm=warm)


def _import_keras():
    """Keras, imported with the process's stderr (fd 2) silenced the first time: TensorFlow's C++ start-up
    logs ignore TF_CPP_MIN_LOG_LEVEL and would land in a student's check table or nbgrader's log."""
    import sys

    if "keras" in sys.modules:
        return sys.modules["keras"]
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import keras
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return keras


def grade(course: LoadedCourse, exercise: str, submission: Submission, *, profile: str | None = None,
          seed: int | None = None, only: list[str] | None = None, train: bool = True, retry: bool = True) -> Report:
    """Grade a built ``submission`` for ``exercise``: every check (or those in ``only``), in this process.

    ``seed`` defaults to a fresh random one and ``profile`` to the device's; both are recorded in the report.
    A model that passes every check that does not train but fails one that does has it graded again on a second
    training, under a second seed (``retry``, see :meth:`GradingRun.retry_because`); ``environment.retry``
    records both trainings.
    The student's faults become failed checks with a message; :class:`ConfigError` when the autograder and
    course.yml disagree, :class:`GraderError` when the grader itself could not produce a result.
    """
    keras = _import_keras()
    keras.backend.clear_session()  # nothing of the previous grade in this process carries over
    return GradingRun(course, exercise, submission, profile=profile, seed=seed, only=only, train=train,
                      retry=retry).execute()


def grade_notebook(course: LoadedCourse, exercise: str, notebook: Path, *, profile: str | None = None,
                   seed: int | None = None, only: list[str] | None = None, others: bool = False,
                   allow_unisolated: bool | None = None, worker=None, warm=None, on_progress=None,
                   cache=None) -> Report:
    """Run ``notebook`` in the student's jail, then grade what it built in the grader's jail.

    ``others``: the notebook is someone else's (nbgrader, a class): where no jail can be made, refuse with
    ConfigError unless the instructor opted out (``allow_unisolated``, default course.yml's). A student's own
    notebook is graded anyway. Either way the report's ``environment.isolation`` says how it was isolated.
    ``worker``: a started :class:`~.worker.GraderWorker` to grade with (a batch keeps one warm); by default
    one is started for this grade, at once, so that it warms up while the notebook runs. ``warm``: a student
    jail for this exercise (:class:`deepgrade.sandbox.warm.StudentServer`; default: this process's).
    ``on_progress(Progress)``: told of each stage (the sandbox, then the grader's own: load, each epoch, ...).
    ``cache``: finished grades by what was built (``get(submission) -> Report | None``, ``put(submission,
    report)``; a batch's :class:`deepgrade.batch.store.BuiltCache`): a submission built the same as an earlier
    one (the same code ran, the same models) takes its grade instead of training again.
    """
    from ..protocol import Progress
    from .isolated import isolation_for
    from .worker import GraderWorker

    isolation = isolation_for(course, others=others, allow_unisolated=allow_unisolated)
    own = worker is None
    worker = worker or GraderWorker(course, jailed=isolation.ok)
    if cache is None:  # it warms up while the notebook runs; with a cache, only once the grade is not found there
        worker.start()
    try:
        with tempfile.TemporaryDirectory(prefix="deepgrade-models-") as tmp:
            if on_progress is not None:
                on_progress(Progress(stage="sandbox"))
            submission = build_submission(course, exercise, notebook, Path(tmp), warm)
            if cache is not None and only is None and (known := cache.get(submission)) is not None:
                return known
            report = worker.grade(exercise, submission, profile=profile, seed=seed, only=only,
                                  on_progress=on_progress)
            if cache is not None and only is None:
                cache.put(submission, report)
            return report
    finally:  # environment.isolation: from the submission, which the student's jail marked
        if own:
            worker.close()


def grade_request(request: GradeRequest) -> Report:
    """Grade the model file or the submission given in a :class:`GradeRequest` (the grader process's input)."""
    course = load_course(request.course)
    entry = request.entry or course.exercise(request.exercise).entry
    submission = request.submission or Submission.of_model(entry, request.model, request.options)
    return grade(course, request.exercise, submission, profile=request.profile, seed=request.seed, only=request.only,
                 train=request.train, retry=request.retry)


def outcome(request: GradeRequest) -> tuple[str, str, int]:
    """Grade ``request``: (:data:`files.REPORT`, the report as JSON, 0), or (:data:`files.ERROR`, what went
    wrong as ``{"kind", "message", "tip"}``, the exit code). Never raises: whatever happens is said."""
    from ..protocol import files

    try:
        return files.REPORT, json.dumps(grade_request(request).dump()), 0
    except Exception as exc:  # noqa: BLE001 - whatever happens is said in the error, never lost
        return files.ERROR, *error_text(exc)


def error_text(exc: Exception) -> tuple[str, int]:
    """What :data:`files.ERROR` says of ``exc`` (``{"kind", "message", "tip"}``, as JSON), and its exit code."""
    from ..errors import DeepgradeError, said

    known = isinstance(exc, DeepgradeError)
    text = json.dumps({"kind": type(exc).__name__ if known else "GraderError",
                       "message": exc.message if known else f"The grader failed ({said(exc)}).",
                       "tip": exc.tip if known else None})
    return text, exc.exit_code if known else GraderError.exit_code
