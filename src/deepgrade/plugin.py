"""The pytest plugin behind every autograder (registered as the ``deepgrade`` pytest11 entry point).

An autograder is a plain pytest module, ``autograders/test_<exercise>.py``,
with one test per check declared in course.yml (``test_architecture`` for the
check ``architecture``). The plugin is active when a submission is given
(``--deepgrade-notebook`` or ``--deepgrade-model``); it provides the fixtures
below, keeps each check's outcome and message on the test item, and writes the
grade as JSON at session finish (``--deepgrade-report``).

Fixtures, all computed in this (trusted) process:
  grading      the GradingSession: course, exercise, profile, seed
  exercise     the exercise's course.yml entry
  profile      the profile's training budget and thresholds
  submission   what the sandboxed notebook produced (a .keras file per entry function)
  models       models(entry): an entry function's model loaded with safe_mode=True
  model        the main entry's model (build_model)
  task         what the grader trains and tests on (all ten classes, or the transfer task's)
  fit_options  the notebook's training options (early stopping), validated; none by default
  base         transfer: the course's pretrained base, loaded here from course.yml's handle
  train        train(model, prepare=None, options=None): a fresh copy of a model trained and evaluated on the test set
  training     train(model), session-cached; metrics recorded in the grade
  passed       call with the message to show when the check passes
"""

from __future__ import annotations

import re
import secrets
import tempfile
import time
from pathlib import Path

import pytest

from .errors import DeepgradeError
from .report import CheckResult, Report

SESSION = pytest.StashKey["GradingSession"]()
MESSAGE = pytest.StashKey[str]()
RESULT = pytest.StashKey[CheckResult]()

_MODULE_NAME = re.compile(r"^test_(?P<exercise>\w+)\.py$")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("deepgrade", "grade a submission with a deepgrade autograder")
    group.addoption("--deepgrade-notebook", help="student notebook to grade (run in the sandbox)")
    group.addoption("--deepgrade-model", help="an already saved .keras model to grade instead of a notebook")
    group.addoption("--deepgrade-options", help="with --deepgrade-model: a JSON file of the training options the notebook returned")
    group.addoption("--deepgrade-entry", help="with --deepgrade-model: the entry function it came from (default: the main one)")
    group.addoption("--deepgrade-exercise", help="exercise id (default: from the autograder's file name)")
    group.addoption("--deepgrade-profile", choices=("smoke", "full"), help="training profile (default: from the device)")
    group.addoption("--deepgrade-seed", type=int, help="seed for training (default: a fresh random seed)")
    group.addoption("--deepgrade-course", help="course.yml or its folder (default: found from the autograder)")
    group.addoption("--deepgrade-report", help="write the grade as JSON to this file")


class GradingSession:
    """Everything one grading run shares; built once, from the command line and course.yml."""

    def __init__(self, config: pytest.Config):
        opt = config.getoption
        self.notebook = Path(opt("--deepgrade-notebook")).resolve() if opt("--deepgrade-notebook") else None
        self.given_model = Path(opt("--deepgrade-model")).resolve() if opt("--deepgrade-model") else None
        self.model_entry: str | None = opt("--deepgrade-entry")
        self.given_options = Path(opt("--deepgrade-options")) if opt("--deepgrade-options") else None
        self.exercise_name: str | None = opt("--deepgrade-exercise")
        self.profile_name: str | None = opt("--deepgrade-profile")
        seed = opt("--deepgrade-seed")
        self.seed: int = seed if seed is not None else secrets.randbelow(2**31)
        self.course_arg = opt("--deepgrade-course")
        self.report_path = Path(opt("--deepgrade-report")) if opt("--deepgrade-report") else None
        self.course = None
        self._tmp = tempfile.TemporaryDirectory(prefix="deepgrade-grader-")
        self.started = time.time()
        self.environment: dict = {}

    def record(self, **metrics: float) -> None:
        """Numbers the grade is made of, kept in ``environment.metrics`` (and read by `deepgrade calibrate`)."""
        self.environment.setdefault("metrics", {}).update({k: round(float(v), 6) for k, v in metrics.items()})

    # -- set up once the autograder module is known ----------------------------------
    def bind(self, autograder: Path) -> None:
        from .config import find_course_root, load_course
        from .environment import default_profile

        if self.exercise_name is None:
            match = _MODULE_NAME.match(autograder.name)
            if not match:
                raise pytest.UsageError(
                    f"Cannot tell the exercise from the autograder's name: expected test_<exercise>.py. "
                    f"Received: {autograder.name}. Pass --deepgrade-exercise."
                )
            self.exercise_name = match["exercise"]
        root = self.course_arg or find_course_root(autograder.parent)
        self.course = load_course(root)
        self.exercise = self.course.exercise(self.exercise_name)
        self.profile_name = self.profile_name or default_profile()
        self.profile = self.course.profile(self.exercise_name, self.profile_name)

    # -- the pipeline, each step cached by its fixture --------------------------------
    def build_submission(self):
        from .sandbox import Built, Limits, build_model, network_isolation

        if self.given_model is not None:
            import json

            options = json.loads(self.given_options.read_text()) if self.given_options else None
            return Built({self.model_entry or self.exercise.entry: self.given_model}, {}, "", 0.0, options)
        limits = Limits(self.exercise.sandbox.time_limit_s, self.exercise.sandbox.memory_limit_mb)
        entries = [self.exercise.entry, *self.exercise.extra_entries]
        base = str(self.base_path()) if self.exercise.transfer else None
        built = build_model(self.notebook, entries, Path(self._tmp.name) / "models", limits,
                            options=self.exercise.options, base=base)
        self.environment["sandbox_seconds"] = round(built.seconds, 2)
        self.environment["sandbox_network"] = "isolated" if network_isolation() else "shared"
        return built

    def base_path(self) -> Path:
        from .transfer import resolve

        return resolve(self.course.base_handle(self.exercise_name))

    def close(self) -> None:
        self._tmp.cleanup()


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--deepgrade-notebook") or config.getoption("--deepgrade-model"):
        config.stash[SESSION] = GradingSession(config)


def _session(config: pytest.Config) -> GradingSession | None:
    return config.stash.get(SESSION, None)


def _check_name(item: pytest.Item) -> str | None:
    return item.name[len("test_"):] if item.name.startswith("test_") else None


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    grading = _session(config)
    if grading is None or not items:
        return
    modules = {Path(str(item.fspath)) for item in items}
    if len(modules) != 1:
        raise pytest.UsageError(f"Grade one autograder at a time. Received: {sorted(str(m) for m in modules)}.")
    try:
        grading.bind(modules.pop())
    except DeepgradeError as exc:
        raise pytest.UsageError(str(exc)) from None
    problem = _mismatch(grading, {_check_name(item) for item in items}) if not config.getoption("-k") else None
    if problem:
        grading.course = None  # no grade is written for an autograder that does not fit course.yml
        raise pytest.UsageError(problem)


def _mismatch(grading: GradingSession, tests: set[str | None]) -> str | None:
    declared = set(grading.exercise.checks)
    unknown = sorted(str(t) for t in tests if t not in declared)
    if unknown:
        return (f"Autograder tests without a check in course.yml: {unknown}. "
                f"Expected one test_<check> per check in exercises.{grading.exercise_name}.checks "
                f"({sorted(declared)}).")
    missing = sorted(declared - tests)
    if missing:
        return (f"course.yml declares checks with no test in the autograder: {missing}. "
                f"Add test_{missing[0]} to the autograder or remove the check.")
    return None


# -- fixtures -------------------------------------------------------------------------

@pytest.fixture(scope="session")
def grading(request: pytest.FixtureRequest) -> GradingSession:
    session = _session(request.config)
    if session is None or session.course is None:
        pytest.skip("no submission given: run through `deepgrade check EXERCISE NOTEBOOK`")
    return session


@pytest.fixture(scope="session")
def exercise(grading: GradingSession):
    return grading.exercise


@pytest.fixture(scope="session")
def profile(grading: GradingSession):
    return grading.profile


@pytest.fixture(scope="session")
def submission(grading: GradingSession):
    """The sandbox's result: ``submission.model(entry)`` is a model file or raises the student's error."""
    return grading.build_submission()


@pytest.fixture(scope="session")
def models(submission):
    """``models(entry)``: the model an entry function returned, loaded with safe_mode=True (cached)."""
    from .trusted import load_model

    cache: dict = {}

    def get(entry: str):
        if entry not in cache:
            try:
                cache[entry] = load_model(submission.model(entry))
            except DeepgradeError as exc:
                cache[entry] = exc
        if isinstance(cache[entry], Exception):
            raise cache[entry]
        return cache[entry]

    return get


@pytest.fixture(scope="session")
def model(models, grading: GradingSession):
    """The model the exercise's main entry function (``build_model``) returned."""
    return models(grading.exercise.entry)


@pytest.fixture(scope="session")
def task(grading: GradingSession):
    from .trusted import Task

    return Task.of(grading.exercise)


@pytest.fixture(scope="session")
def fit_options(submission, grading: GradingSession):
    from .config import FitOptions

    name = grading.exercise.options
    return submission.fit_options(name) if name else FitOptions()


@pytest.fixture(scope="session")
def base(grading: GradingSession):
    """The course's pretrained base, loaded by the grader itself (never taken from the student's file)."""
    from .errors import GraderError
    from .transfer import is_course_base, load_base

    path = grading.base_path()
    if not is_course_base(path):
        raise GraderError(f"The course's base ({grading.course.base_handle(grading.exercise_name)}) is a SavedModel "
                          "without a Keras config (an online handle): the grader grades bases built by "
                          "`deepgrade pretrain`. Tell your instructor.")
    return load_base(str(path))


@pytest.fixture(scope="session")
def train(grading: GradingSession, task):
    """``train(model, prepare=None, options=None, warmup=None)``: a fresh copy trained under the session's
    profile, seed and task (see ``trusted.train_and_evaluate``)."""
    from .trusted import check_io, train_and_evaluate

    def run(model, prepare=None, options=None, warmup=None):
        check_io(model, task.num_classes)
        return train_and_evaluate(model, grading.profile, grading.exercise.compile, grading.seed, task=task,
                                  options=options, prepare=prepare, warmup=warmup)

    return run


@pytest.fixture(scope="session")
def training(model, grading: GradingSession, train, fit_options, request: pytest.FixtureRequest):
    prepare = None
    if grading.exercise.transfer is not None:
        from .transfer import find_base, restore

        base = request.getfixturevalue("base")
        try:
            find_base(model, base)
            prepare = restore(base)  # the pretrained weights, from the course's handle
        except DeepgradeError:
            pass  # no base in the model: trained as it is, from scratch (the base_used check says why)
    result = train(model, prepare, fit_options)
    grading.environment.update(
        train_size=result.train_size, epochs=result.epochs, train_seconds=round(result.seconds, 2),
        compiled_by=result.compiled_by, epochs_run=result.epochs_run,
    )
    if result.validation_size:
        grading.environment["validation_size"] = result.validation_size
    grading.record(test_accuracy=result.test_accuracy, train_accuracy=result.train_accuracy, gap=result.gap)
    return result


@pytest.fixture
def passed(request: pytest.FixtureRequest):
    """``passed("message")`` records what the student sees when the check passes."""

    def record(message: str) -> None:
        request.node.stash[MESSAGE] = message

    return record


# -- outcomes -------------------------------------------------------------------------

def _message(exc: BaseException) -> tuple[str, bool]:
    """(message for the student, whether the grader itself failed)."""
    if isinstance(exc, DeepgradeError):
        return str(exc), False
    if isinstance(exc, AssertionError):
        text = str(exc).split("\nassert ")[0].strip()
        return text or "assertion failed", False
    if isinstance(exc, pytest.skip.Exception):
        return f"not run: {exc.msg}", False
    return (f"The grader failed on this check ({type(exc).__name__}: {exc}); "
            "this is not a problem with your work: tell your instructor."), True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    grading = _session(item.config)
    name = _check_name(item)
    if grading is None or grading.course is None or name not in grading.exercise.checks or RESULT in item.stash:
        return report
    points = grading.exercise.checks[name].points
    if report.when == "call" and report.passed:
        item.stash[RESULT] = CheckResult(name, True, points, points, item.stash.get(MESSAGE, "passed"))
    elif report.failed or report.skipped:
        message, grader_fault = _message(call.excinfo.value) if call.excinfo else ("failed", False)
        if grader_fault:
            grading.environment.setdefault("grader_errors", []).append(name)
        item.stash[RESULT] = CheckResult(name, False, 0.0, points, message)
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    grading = _session(session.config)
    if grading is None or grading.course is None:
        return
    by_name = {_check_name(i): i.stash[RESULT] for i in session.items if RESULT in i.stash}
    checks = [by_name[name] for name in grading.exercise.checks if name in by_name]
    try:
        from .environment import describe

        grading.environment.update(describe())
    except Exception as exc:  # noqa: BLE001 - a grade is never lost for want of its metadata
        grading.environment["describe_error"] = f"{type(exc).__name__}: {exc}"
    grading.environment.update(seed=grading.seed, grade_seconds=round(time.time() - grading.started, 2))
    report = Report(grading.exercise_name, grading.profile_name, checks, grading.environment)
    if grading.report_path is not None:
        report.write(grading.report_path)
    grading.close()
