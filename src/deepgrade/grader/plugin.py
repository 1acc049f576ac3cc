"""The pytest plugin behind every autograder (registered as the ``deepgrade`` pytest11 entry point).

An autograder is a plain pytest module, ``autograders/test_<exercise>.py``, with one test per check declared
in course.yml (``test_architecture`` for the check ``architecture``). The plugin is active when a grade is in
progress: :func:`deepgrade.grader.grade` registers its :class:`~deepgrade.grader.run.GradingRun` for an
in-process session, or ``pytest autograders/test_X.py --deepgrade-notebook NB`` builds one from the command
line. It provides the fixtures below, keeps each check's outcome and message on the test item, and hands the
results to the run (which writes the report).

Fixtures, all computed in this (trusted) process:
  grading      the GradingRun: course, exercise, profile, seed, the submission
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

from pathlib import Path

import pytest

from ..errors import DeepgradeError, GraderError, StudentCodeError, first_line
from ..protocol import CheckResult, Submission, parse_options
from .labels import ACCURACY_KEYS as LABELS_ACCURACY_KEYS
from .progress import emit
from .run import RUN, GradingRun, check_name

MESSAGE = pytest.StashKey[str]()
RESULT = pytest.StashKey[CheckResult]()
TRAINING_FIXTURES = {"train", "training"}  # a test that uses one trains the model: its result depends on the seed


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("deepgrade", "grade a submission with a deepgrade autograder")
    group.addoption("--deepgrade-notebook", help="student notebook to grade (run in the sandbox)")
    group.addoption("--deepgrade-model", help="an already saved .keras model to grade instead of a notebook")
    group.addoption("--deepgrade-entry", help="with --deepgrade-model: the entry function it came from (default: the main one)")
    group.addoption("--deepgrade-exercise", help="exercise id (default: from the autograder's file name)")
    group.addoption("--deepgrade-profile", choices=("smoke", "full"), help="training profile (default: from the device)")
    group.addoption("--deepgrade-seed", type=int, help="seed for training (default: a fresh random seed)")
    group.addoption("--deepgrade-course", help="course.yml or its folder (default: found from the autograder)")
    group.addoption("--deepgrade-report", help="write the grade as JSON to this file")


def pytest_configure(config: pytest.Config) -> None:
    if RUN not in config.stash and (config.getoption("--deepgrade-notebook") or config.getoption("--deepgrade-model")):
        config.stash[RUN] = GradingRun.from_options(config)


def _run(config: pytest.Config) -> GradingRun | None:
    return config.stash.get(RUN, None)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Check that the autograder and course.yml agree (always, whatever is selected); keep the selected checks."""
    run = _run(config)
    if run is None or not items:
        return
    modules = {item.module for item in items if isinstance(item, pytest.Function)}
    if len(modules) != 1:
        run.problem = f"Grade one autograder at a time. Received: {sorted(m.__file__ for m in modules)}."
        raise pytest.UsageError(run.problem)
    module = modules.pop()
    try:
        run.bind(Path(module.__file__))
    except DeepgradeError as exc:
        run.problem = str(exc)
        raise pytest.UsageError(run.problem) from None
    tests = {name[len("test_"):] for name, value in vars(module).items() if name.startswith("test_") and callable(value)}
    problem = run.mismatch(tests)
    if problem:
        run.problem = problem
        raise pytest.UsageError(problem)
    fixtures = {check_name(item.name): set(getattr(item, "fixturenames", ())) for item in items}
    run.trains = {name for name, used in fixtures.items() if TRAINING_FIXTURES & used}
    if not run.train:  # structural checks only (a notebook's first check cells): the training ones wait
        run.environment["deferred"] = [name for name in run.checks if name in run.trains]
        # the checks that share the session's one training run (accuracy and gap): graded together later
        run.environment["trains_together"] = [name for name in run.checks if "training" in fixtures.get(name, ())]
        run.checks = [name for name in run.checks if name not in run.trains]
    wanted = {f"test_{name}" for name in run.checks}
    keep = [item for item in items if item.name in wanted]
    dropped = [item for item in items if item.name not in wanted]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = keep


# -- fixtures -------------------------------------------------------------------------

@pytest.fixture(scope="session")
def grading(request: pytest.FixtureRequest) -> GradingRun:
    run = _run(request.config)
    if run is None or run.exercise is None:
        pytest.skip("no submission given: run through `deepgrade check EXERCISE NOTEBOOK`")
    return run


@pytest.fixture(scope="session")
def exercise(grading: GradingRun):
    return grading.exercise


@pytest.fixture(scope="session")
def profile(grading: GradingRun):
    return grading.profile


@pytest.fixture(scope="session")
def submission(grading: GradingRun) -> Submission:
    """The sandbox's result: ``submission.model(entry)`` is a model file or raises the student's error."""
    return grading.submission


@pytest.fixture(scope="session")
def models(submission: Submission):
    """``models(entry)``: the model an entry function returned, loaded with safe_mode=True (cached)."""
    from .loading import load_model

    cache: dict = {}

    def get(entry: str):
        if entry not in cache:
            emit("load")
            try:
                cache[entry] = load_model(submission.model(entry))
            except DeepgradeError as exc:
                cache[entry] = exc
        if isinstance(cache[entry], Exception):
            raise cache[entry]
        return cache[entry]

    return get


@pytest.fixture(scope="session")
def model(models, grading: GradingRun):
    """The model the exercise's main entry function (``build_model``) returned."""
    return models(grading.exercise.entry)


@pytest.fixture(scope="session")
def task(grading: GradingRun):
    from .training import Task

    return Task.of(grading.exercise)


@pytest.fixture(scope="session")
def fit_options(submission: Submission, grading: GradingRun):
    name = grading.exercise.options
    return parse_options(submission.raw_options(), name) if name else parse_options(None)


@pytest.fixture(scope="session")
def base(grading: GradingRun):
    """The course's pretrained base, loaded by the grader itself (never taken from the student's file), from its
    Keras config and numpy weights: the same on every backend, no TensorFlow needed."""
    from ..pretrained import is_course_base, load_base

    path = grading.base_path()
    if not is_course_base(path):
        raise GraderError(f"The course's base ({grading.course.base_handle(grading.exercise_name)}) is a SavedModel "
                          "without a Keras config (an online handle): the grader grades bases built by "
                          "`deepgrade pretrain`. Tell your instructor.")
    return load_base(str(path), neutral=True)


@pytest.fixture(scope="session")
def train(grading: GradingRun, task):
    """``train(model, prepare=None, options=None, warmup=None)``: a fresh copy trained under the run's
    profile, seed and task (see ``training.train_and_evaluate``)."""
    from .loading import check_io
    from .training import train_and_evaluate

    def run(model, prepare=None, options=None, warmup=None):
        check_io(model, task.num_classes)
        done = train_and_evaluate(model, grading.profile, grading.exercise.compile, grading.seed, task=task,
                                  options=options, prepare=prepare, warmup=warmup)
        grading.environment["trained"] = True  # the seed now means something (shown beside training checks)
        return done

    return run


@pytest.fixture(scope="session")
def training(model, grading: GradingRun, train, fit_options, task, request: pytest.FixtureRequest):
    prepare = None
    if grading.exercise.transfer is not None:
        from .checks.transfer import find_base, restore

        base = request.getfixturevalue("base")
        try:
            find_base(model, base)
            prepare = restore(base)  # the pretrained weights, from the course's handle
        except StudentCodeError:
            pass  # no base in the model: trained as it is, from scratch (the base_used check says why)
    result = train(model, prepare, fit_options)
    grading.environment.update(
        train_size=result.train_size, epochs=result.epochs, train_seconds=round(result.seconds, 2),
        evaluate_seconds=round(result.evaluate_seconds, 2),
        compiled_by=result.compiled_by, epochs_run=result.epochs_run, trained_by=result.method,
    )
    if result.validation_size:
        grading.environment["validation_size"] = result.validation_size
    grading.record(test_accuracy=result.test_accuracy, train_accuracy=result.train_accuracy, gap=result.gap)
    try:
        grading.curves = curves_of(result, task)
    except Exception as exc:  # noqa: BLE001 - the plots are feedback: a grade never fails for them
        grading.environment["curves_error"] = f"{type(exc).__name__}: {first_line(exc)}"
    return result


ACCURACY_KEYS = LABELS_ACCURACY_KEYS  # the grader names it "accuracy" (labels.follow_labels); older spellings too


def curves_of(result, task):
    """The feedback's plots, as numbers: loss and accuracy per epoch (training and validation; the student's
    metric names do not travel: the first accuracy metric found is "accuracy"), and the test-set confusion
    matrix. Values that are not finite (a diverging run) are None."""
    import math

    from ..protocol import Curves
    from .data import CLASS_NAMES

    history = result.history

    def series(prefix: str, keys) -> list | None:
        found = next((history[prefix + k] for k in keys if prefix + k in history), None)
        return None if found is None else [round(v, 6) if math.isfinite(v) else None for v in found]

    curves = {f"{prefix}{name}": values for prefix in ("", "val_") for name, keys in
              (("loss", ("loss",)), ("accuracy", ACCURACY_KEYS)) if (values := series(prefix, keys)) is not None}
    return Curves(history=curves, confusion=result.confusion.tolist(), classes=[CLASS_NAMES[c] for c in task.classes],
                  validation=result.monitored_on)


@pytest.fixture
def passed(request: pytest.FixtureRequest):
    """``passed("message")`` records what the student sees when the check passes."""

    def record(message: str) -> None:
        request.node.stash[MESSAGE] = message

    return record


# -- outcomes -------------------------------------------------------------------------

def _message(exc: BaseException) -> tuple[str, bool]:
    """(message for the student, whether the grader itself failed)."""
    if isinstance(exc, DeepgradeError) and not isinstance(exc, GraderError):
        return str(exc), False
    if isinstance(exc, GraderError):
        return str(exc), True
    if isinstance(exc, AssertionError):
        text = str(exc).split("\nassert ")[0].strip()
        return text or "assertion failed", False
    if isinstance(exc, pytest.skip.Exception):
        return f"not run: {exc.msg}", False
    from ..habits import MODEL_HABITS, hint_for

    hint = hint_for(exc, only=MODEL_HABITS)
    if hint:  # the student's model failed in Keras (a Keras 2 habit), not the grader
        return f"This check could not run on your model ({type(exc).__name__}: {first_line(exc)}). {hint}", False
    return (f"The grader failed on this check ({type(exc).__name__}: {first_line(exc)}); "
            "this is not a problem with your work: tell your instructor."), True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    run = _run(item.config)
    name = check_name(item.name)
    if run is None or run.exercise is None or name not in run.exercise.checks or name in run.results:
        return report
    points = run.exercise.checks[name].points
    if call.excinfo is not None and getattr(call.excinfo.value, "structural", False):
        run.trains.discard(name)  # failed on what the model is: no second training can change it
    trains = name in run.trains
    if report.when == "call" and report.passed:
        message = item.stash.get(MESSAGE, "passed")
        run.results[name] = _result(name=name, passed=True, points=points, max_points=points, message=str(message),
                                    trains=trains, layers=getattr(message, "layers", []))
    elif report.failed or report.skipped:
        message, grader_fault = _message(call.excinfo.value) if call.excinfo else ("failed", False)
        if grader_fault:
            run.environment.setdefault("grader_errors", []).append(name)
        layers = getattr(call.excinfo.value, "layers", []) if call.excinfo else []
        run.results[name] = _result(name=name, passed=False, points=0.0, max_points=points, message=message,
                                    trains=trains, layers=layers)
    return report


def _result(**fields) -> CheckResult:
    """The check's result; a layer table the report cannot carry is left out, never the verdict."""
    try:
        return CheckResult(**fields)
    except ValueError:
        return CheckResult(**{**fields, "layers": []})


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    run = _run(session.config)
    if run is None or run.exercise is None or run.problem:
        return
    report_path = session.config.getoption("--deepgrade-report", None)
    if report_path:
        run.report().write(Path(report_path))
