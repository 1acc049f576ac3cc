"""Checks a student runs inside their own notebook (the test cells of each exercise).

This is a convenience for the student, not the grade: it saves the model that
``build_fn()`` returns and hands the file to the trusted grader in its own jail
(``python -m deepgrade.grader`` under bubblewrap; a plain process where no jail
can be made), never in the student's kernel. When an instructor autogrades, nbgrader does not run these cells:
deepgrade's trusted grader fills in their results (see ``nbgrader_ext``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import CheckFailed, ConfigError, DeepgradeError, GraderError

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
    from .grader.isolated import grade_in_jail
    from .protocol import GradeRequest, Report, Submission
    from .sandbox import isolation

    here = isolation()
    if here.ok:
        report = grade_in_jail(course, exercise, Submission.of_model(entry, model, options), profile=profile,
                               seed=seed, only=[name])
    else:
        request = GradeRequest(course=course.root, exercise=exercise, model=model, entry=entry, options=options,
                               profile=profile, seed=seed, only=[name])
        report = Report.read(_grader_process(request, folder))
    return report.model_copy(update={"environment": {**report.environment, "isolation": here.label}})


def _grader_process(request, folder: Path) -> Path:
    """Run the trusted grader in a process of its own (never in the student's kernel); the report's path."""
    import json

    from .protocol import files

    request_file, report_file = folder / files.GRADE_REQUEST, folder / files.REPORT
    request_file.write_text(request.model_dump_json())
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
    proc = subprocess.run([sys.executable, "-m", "deepgrade.grader", str(request_file), str(report_file)],
                          cwd=request.course, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    error_file = report_file.with_suffix(".error.json")
    if error_file.is_file():
        error = json.loads(error_file.read_text())
        kind = {"ConfigError": ConfigError, "GraderError": GraderError}.get(error.get("kind"), DeepgradeError)
        raise kind(error.get("message", "the grader failed"), tip=error.get("tip"))
    if not report_file.is_file():
        tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
        raise GraderError(f"The grader process for {request.exercise!r} ended (exit code {proc.returncode}) "
                          f"without writing a grade. Its last output:\n{tail}")
    return report_file


def seed_from_environment() -> int | None:
    """``$DEEPGRADE_SEED`` as a seed, or None when unset; anything but a whole number >= 0 is a clear error."""
    text = os.environ.get(SEED_ENV, "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise ConfigError(f"DEEPGRADE_SEED: expected a whole number >= 0 (the training seed). Received: {text!r}. "
                          "Set it to e.g. 7, or unset it to let the grader draw a seed.")
    return int(text)
