"""Checks a student runs inside their own notebook (the test cells of each exercise).

This is a convenience for the student, not the grade: it saves the model that
``build_fn()`` returns and hands the file to the trusted grader in a separate
process. When an instructor autogrades, nbgrader does not run these cells:
deepgrade's trusted grader fills in their results (see ``nbgrader_ext``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

from .architecture import CheckFailed


def check(exercise: str, name: str, build_fn: Callable, *, options: Callable | None = None,
          profile: str | None = None, seed: int | None = None) -> None:
    """Run one check of ``exercise`` on ``build_fn()``; print the verdict, raise CheckFailed when it fails.

    ``build_fn`` that takes an argument gets the course's pretrained base (transfer); ``options`` is the
    notebook's training-options function (early stopping), sent to the grader as data. Without ``seed``
    the grader draws a fresh one, unless ``$DEEPGRADE_SEED`` fixes it (to reproduce a run, or in tests).
    """
    import json

    from .config import load_course
    from .grading import grade

    from .transfer import load_base, takes_base

    course = load_course()
    if seed is None:
        seed = seed_from_environment()
    if takes_base(build_fn):
        model = build_fn(load_base())
    else:
        model = build_fn()
    if model is None:
        raise CheckFailed(f"{build_fn.__name__}() returned None; expected a Keras model. Did you forget `return model`?")
    with tempfile.TemporaryDirectory(prefix="deepgrade-check-") as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        options_file = None
        if options is not None:
            options_file = Path(tmp) / "options.json"
            options_file.write_text(json.dumps(options()))
        report = grade(course, exercise, model=path, entry=build_fn.__name__, options=options_file, profile=profile,
                       seed=seed, only=[name])
    result = next((c for c in report.checks if c.name == name), None)
    if result is None:
        raise CheckFailed(f"No result for the check {name!r} of {exercise!r}.")
    drawn = f" [seed {report.environment['seed']}]" if "seed" in report.environment else ""
    if not result.passed:
        raise CheckFailed(f"{name}: {result.message}{drawn}")
    print(f"PASS {name} ({result.points:g} / {result.max_points:g}): {result.message}{drawn}")


def seed_from_environment() -> int | None:
    """``$DEEPGRADE_SEED`` as a seed, or None when unset; anything but a whole number >= 0 is a clear error."""
    from .errors import ConfigError

    text = os.environ.get("DEEPGRADE_SEED", "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise ConfigError(f"DEEPGRADE_SEED: expected a whole number >= 0 (the training seed). Received: {text!r}. "
                          "Set it to e.g. 7, or unset it to let the grader draw a seed.")
    return int(text)
