"""Checks a student runs inside their own notebook (the test cells of each exercise).

This is a convenience for the student, not the grade: ``check(...)`` saves the models the notebook's entry
functions return and hands the files to the trusted grader in its own jail
(:class:`deepgrade.grader.worker.GraderWorker`: bubblewrap; a plain process where no jail can be made),
never in the student's kernel. When an instructor autogrades, nbgrader does not run these cells:
deepgrade's trusted grader fills in their results (see ``nbgrader_ext``).

One grader serves every check cell of a notebook (it stays up while the kernel does), and its reports are
cached on what was built (the models' configurations, the training options, profile and seed): the first
check cell grades every check that does not train, the first cell of a check that trains grades the rest
(one training: accuracy and gap come from the same run), and every other cell answers from the cache.
A failing check shows a FAIL verdict and returns: Run All goes on to the next cell. (Under nbgrader's own
execution, ``nbgrader validate`` or an autograde without deepgrade's step, a failing check raises, so that
nbgrader sees it.)

Importing this module quiets TensorFlow's C++ start-up logs: the notebooks import it before ``keras``.
"""

from __future__ import annotations

import atexit
import collections
import hashlib
import json
import os
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from . import habits
from .errors import CheckFailed, ConfigError, DeepgradeError, StudentCodeError, said

SEED_ENV = "DEEPGRADE_SEED"  # fixes the seed of the in-notebook checks (to reproduce a run, or in tests)
CACHED = 16  # reports kept per kernel


def _quiet_tensorflow() -> None:
    """TensorFlow's C++ logs: off by TF_CPP_MIN_LOG_LEVEL for what honours it, and with this process's stderr
    (fd 2) pointed at /dev/null while Keras is first imported for the start-up lines that do not."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "keras" in sys.modules:
        return
    try:
        saved = os.dup(2)
    except OSError:
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import keras  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken Keras is said where it is used, not here
        pass
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class Verdict:
    """What a check cell shows: PASS or FAIL, the points, the message (HTML in Jupyter, text elsewhere)."""

    def __init__(self, report, result, *, plots: bool = False):
        self.report, self.result, self.plots = report, result, plots

    @property
    def passed(self) -> bool:
        return self.result.passed

    def _repr_html_(self) -> str:
        from .feedback import check_html

        return check_html(self.report, self.result, plots=self.plots)

    def __repr__(self) -> str:
        from .feedback import check_text

        return check_text(self.report, self.result)


WORKER_ENV = ("DEEPGRADE_PROFILE", "DEEPGRADE_BACKEND", "KERAS_BACKEND", "CUDA_VISIBLE_DEVICES")  # read by the grader when it starts


def worker_environment() -> tuple:
    return tuple(os.environ.get(name) for name in WORKER_ENV)


class _Session:
    """This kernel's grader and the reports it gave, by what was built."""

    def __init__(self):
        self.worker = None
        self.started_for: tuple | None = None
        self.builds: collections.OrderedDict[tuple, _Graded] = collections.OrderedDict()
        atexit.register(self.close)

    def grader(self, course):
        """The kernel's grader for ``course``, started anew when the course or a setting it reads at start
        (:data:`WORKER_ENV`: the profile, the backend, the GPUs) has changed since."""
        from .grader.worker import GraderWorker
        from .sandbox import isolation

        started_for = (course.root, worker_environment())
        if self.worker is not None and self.started_for != started_for:
            self.close()
        if self.worker is None:
            self.isolation = isolation()
            self.worker = GraderWorker(course, jailed=self.isolation.ok).start()
            self.started_for = started_for
        return self.worker

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()
            self.worker = None

    def graded(self, key: tuple) -> "_Graded":
        """What is known of one build (``key``): kept for the last :data:`CACHED` builds."""
        if key not in self.builds:
            self.builds[key] = _Graded()
            while len(self.builds) > CACHED:
                self.builds.popitem(last=False)
        self.builds.move_to_end(key)
        return self.builds[key]


class _Graded:
    """One build's reports, by check: the structural grade's, then each training run's."""

    def __init__(self):
        self.reports: dict[str, object] = {}
        self.deferred: list[str] | None = None  # None: not graded yet
        self.together: list[str] = []

    def add(self, report) -> None:
        for result in report.checks:
            self.reports[result.name] = report
        if self.deferred is None:
            self.deferred = list(report.environment.get("deferred", []))
            self.together = list(report.environment.get("trains_together", []))


SESSION = _Session()


def _prestart() -> None:
    """In a Jupyter kernel (not the sandbox's shell, not under nbgrader), start the notebook's grader as the
    notebook imports this module: it loads Keras and the data while the kernel does, so the first check cell
    does not wait for it. Anything missing (no course) is said by the first check, not here."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if type(shell).__name__ != "ZMQInteractiveShell" or os.environ.get("NBGRADER_EXECUTION"):
            return
        from .course import load_course

        SESSION.grader(load_course())
    except Exception:  # noqa: BLE001 - only a head start: the first check starts it (and says why it cannot)
        pass


_prestart()
_quiet_tensorflow()
habits.install_ipython_hints()  # a Keras 2 habit's error in any cell gets the Keras 3 way under its traceback


def check(exercise: str, name: str, build_fn: Callable, *, options: Callable | None = None,
          profile: str | None = None, seed: int | None = None) -> None:
    """Show the verdict of the check ``name`` of ``exercise`` on what the notebook's functions build.

    ``build_fn`` is the entry function the check grades (one that takes an argument gets the course's
    pretrained base); the exercise's other entry functions are taken from the notebook by name. ``options``
    is the notebook's training-options function (early stopping), sent to the grader as data. Without
    ``seed`` the grader draws a fresh one, unless ``$DEEPGRADE_SEED`` fixes it.
    """
    namespace = sys._getframe(1).f_globals
    show = _Display()
    try:
        verdict = _verdict(exercise, name, build_fn, options, profile, seed, namespace, show.progress)
    except DeepgradeError as exc:
        verdict = _failure(exercise, name, str(exc))
    show.done(verdict)
    if not verdict.passed and os.environ.get("NBGRADER_EXECUTION"):
        raise CheckFailed(repr(verdict))


def _verdict(exercise, name, build_fn, options, profile, seed, namespace, progress) -> Verdict:
    from .course import load_course
    from .feedback.html import first_training_check

    course = load_course()
    ex = course.exercise(exercise)
    if name not in ex.checks:
        raise ConfigError(f"Unknown check of {exercise!r}: expected one of {', '.join(ex.checks)}. Received: {name!r}.")
    if seed is None:
        seed = seed_from_environment()
    with tempfile.TemporaryDirectory(prefix="deepgrade-check-") as tmp:
        submission, built = _build(ex, build_fn, options, namespace, Path(tmp))
        graded = SESSION.graded((exercise, profile, seed, worker_environment(), built))
        if name not in graded.reports and graded.deferred is None:  # this build's checks that do not train
            graded.add(_grade(course, exercise, submission, profile, seed, None, progress))
        if name not in graded.reports and name in (graded.deferred or ()):  # a check that trains: its run
            only = graded.together if name in graded.together else [name]
            graded.add(_grade(course, exercise, submission, profile, seed, only, progress))
    report = graded.reports.get(name)
    result = report.check(name) if report is not None else None
    if result is None:
        raise CheckFailed(f"No result for the check {name!r} of {exercise!r}.")
    return Verdict(report, result, plots=name == first_training_check(report))


def _build(ex, build_fn, options, namespace, folder: Path):
    """Save what each entry function returns (``build_fn`` for its own entry, the others from the notebook):
    the submission, and a digest of what was built (the configurations, not the random initial weights)."""
    import keras

    from .pretrained import load_base, takes_base
    from .protocol import Submission

    keras.backend.clear_session()  # layer names as a fresh kernel's summary() shows them: dense, dense_1, ...
    models, errors, digest = {}, {}, hashlib.sha256()
    for entry in [ex.entry, *ex.extra_entries]:
        fn = build_fn if getattr(build_fn, "__name__", None) == entry else namespace.get(entry)
        if fn is None:
            errors[entry] = f"{entry}() is not defined in this notebook: run the cell that defines it first."
            continue
        try:
            model = fn(load_base()) if takes_base(fn) else fn()
        except DeepgradeError:
            raise
        except Exception as exc:  # noqa: BLE001 - the student's code: said as the check's message
            errors[entry] = f"{entry}() raised {said(exc)}{_hint(exc)}"
            continue
        if model is None:
            errors[entry] = f"{entry}() returned None; expected a Keras model. Did you forget `return model`?"
            continue
        path = folder / f"{entry}.keras"
        try:
            model.save(path)
        except Exception as exc:  # noqa: BLE001
            errors[entry] = f"{entry}() returned something that cannot be saved as a Keras model ({said(exc)})."
            continue
        models[entry] = path
        with zipfile.ZipFile(path) as archive:
            digest.update(entry.encode() + _canonical(archive.read("config.json")))
    if options is None and ex.options:  # the notebook's options function, by name, for every check cell alike
        options = namespace.get(ex.options)
    given, problem = _options(options, ex.options or "fit_options")
    digest.update(json.dumps([given, problem, errors], sort_keys=True, default=str).encode())
    return Submission(models=models, errors=errors, options=given, options_error=problem), digest.hexdigest()


def _options(fn, name: str) -> tuple[dict | None, str | None]:
    """What the options function returned, as plain data, or why it cannot be used (said as the checks' message,
    the way the sandbox says it)."""
    if fn is None:
        return None, None
    try:
        value = fn()
    except Exception as exc:  # noqa: BLE001 - the student's code
        return None, f"{name}() raised {said(exc)}{_hint(exc)}"
    from .protocol import options_json

    try:
        return json.loads(options_json(value, name)), None
    except StudentCodeError as exc:
        return None, exc.message


def _canonical(config: bytes) -> bytes:
    """A saved model's config.json with Keras's ``shared_object_id`` (a Python ``id()``, new in every build)
    numbered in order of appearance: the same model built twice gives the same bytes."""
    ids: dict = {}

    def walk(node):
        if isinstance(node, dict):
            return {k: ids.setdefault(v, len(ids)) if k == "shared_object_id" else walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return json.dumps(walk(json.loads(config)), sort_keys=True).encode()


def _hint(exc: BaseException) -> str:
    from .habits import hint_for

    found = hint_for(exc)
    return f" {found}" if found else ""


def _grade(course, exercise: str, submission, profile, seed, only: list[str] | None, progress):
    """The trusted grader's report, from its own jail (or, where no jail can be made, its own process; the
    report then says it was not isolated). Never computed in the student's kernel. ``only``: None for the
    checks that do not train (the others deferred), else the training checks to grade (one run)."""
    try:
        worker = SESSION.grader(course)
        report = worker.grade(exercise, submission, profile=profile, seed=seed, only=only, train=only is not None,
                              on_progress=progress)
    except DeepgradeError:
        SESSION.close()
        raise
    return report.model_copy(update={"environment": {**report.environment, "isolation": SESSION.isolation.label}})


def _failure(exercise: str, name: str, message: str) -> Verdict:
    from .protocol import CheckResult, Report

    points = 0.0
    try:
        from .course import load_course

        points = float(load_course().exercise(exercise).checks[name].points)
    except (DeepgradeError, KeyError):
        pass
    result = CheckResult(name=name, passed=False, points=0.0, max_points=points, message=message)
    return Verdict(Report(exercise=exercise, profile="?", checks=[result]), result)


class _Display:
    """One output area per check cell: the grade's progress while it runs, then the verdict in its place."""

    def __init__(self):
        self.handle = None
        try:
            from IPython import get_ipython

            self.ipython = get_ipython() is not None
        except ImportError:
            self.ipython = False

    def progress(self, said) -> None:
        if not self.ipython:
            print(f"... {said.text()}", flush=True)
            return
        from html import escape

        from IPython.display import HTML, display

        bar = (f"<progress value='{said.epoch}' max='{said.epochs}' style='width: 12em'></progress> "
               if said.epoch is not None and said.epochs else "")
        shown = HTML(f"<div class='dg-progress'>{bar}{escape(said.text())}</div>")
        if self.handle is None:
            self.handle = display(shown, display_id=True)
        else:
            self.handle.update(shown)

    def done(self, verdict: Verdict) -> None:
        if not self.ipython:
            print(repr(verdict), flush=True)
            return
        from IPython.display import display

        if self.handle is None:
            display(verdict)
        else:
            self.handle.update(verdict)



def seed_from_environment() -> int | None:
    """``$DEEPGRADE_SEED`` as a seed, or None when unset; anything but a whole number >= 0 is a clear error."""
    text = os.environ.get(SEED_ENV, "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise ConfigError(f"DEEPGRADE_SEED: expected a whole number >= 0 (the training seed). Received: {text!r}. "
                          "Set it to e.g. 7, or unset it to let the grader draw a seed.")
    return int(text)
