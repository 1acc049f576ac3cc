"""Checks a student runs inside their own notebook (the test cells of each exercise).

This is a convenience for the student, not the grade: it saves the model that
``build_fn()`` returns and hands the file to the trusted grader in its own jail
(:class:`deepgrade.grader.worker.GraderWorker`: bubblewrap; a plain process where no jail
can be made), never in the student's kernel. When an instructor autogrades, nbgrader does not run these cells:
deepgrade's trusted grader fills in their results (see ``nbgrader_ext``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import CheckFailed, ConfigError

SEED_ENV = "DEEPGRADE_SEED"  # fixes the seed of the in-notebook checks (to reproduce a run, or in tests)


def check(exercise: str, name: str, build_fn: Callable, *, options: Callable | None = None,
          profile: str | None = None, seed: int | None = None) -> None:
    """Run one check of ``exercise`` on ``build_fn()``; print the verdict, raise CheckFailed when it fails.

    ``build_fn`` that takes an argument gets the course's pretrained base (transfer); ``options`` is the
    notebook's training-options function (early stopping), sent to the grader as data. Without ``seed``
    the grader draws a fresh one, unless ``$DEEPGRADE_SEED`` fixes it (to reproduce a run, or in tests).
    """
    from .course import load_course
    from .pretrained import load_base, takes_base

    course = load_course()
    if seed is None:
        seed = seed_from_environment()
    model = build_fn(load_base()) if takes_base(build_fn) else build_fn()
    if model is None:
        raise CheckFailed(f"{build_fn.__name__}() returned None; expected a Keras model. Did you forget `return model`?")
    with tempfile.TemporaryDirectory(prefix="deepgrade-check-") as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        given = options() if options is not None else None
        report = _grade(course, exercise, build_fn.__name__, path, given, profile, seed, name, Path(tmp))
    result = report.check(name)
    if result is None:
        raise CheckFailed(f"No result for the check {name!r} of {exercise!r}.")
    drawn = f" [seed {report.environment['seed']}]" if "seed" in report.environment else ""
    if not result.passed:
        raise CheckFailed(f"{name}: {result.message}{drawn}")
    print(f"PASS {name} ({result.points:g} / {result.max_points:g}): {result.message}{drawn}")


def _grade(course, exercise: str, entry: str, model: Path, options, profile, seed, name: str, folder: Path):
    """The trusted grader's report on one check, from its own jail (or, where no jail can be made, its own
    process; the report then says it was not isolated). Never computed in the student's kernel."""
    from .grader.worker import GraderWorker
    from .protocol import Submission
    from .sandbox import isolation

    here = isolation()
    with GraderWorker(course, jailed=here.ok) as worker:
        report = worker.grade(exercise, Submission.of_model(entry, model, options), profile=profile, seed=seed,
                              only=[name])
    return report.model_copy(update={"environment": {**report.environment, "isolation": here.label}})


def seed_from_environment() -> int | None:
    """``$DEEPGRADE_SEED`` as a seed, or None when unset; anything but a whole number >= 0 is a clear error."""
    text = os.environ.get(SEED_ENV, "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise ConfigError(f"DEEPGRADE_SEED: expected a whole number >= 0 (the training seed). Received: {text!r}. "
                          "Set it to e.g. 7, or unset it to let the grader draw a seed.")
    return int(text)
