"""grade(): run an exercise's autograder on one submission in a fresh trusted process.

The trusted grader is a pytest process (``python -m pytest autograders/test_X.py``
with the deepgrade plugin); this module starts it, waits, and reads back the
JSON grade it wrote. A crash of that process is a :class:`GraderError`, never
a silent zero.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .config import LoadedCourse
from .errors import GraderError
from .report import Report


def grade(
    course: LoadedCourse,
    exercise: str,
    notebook: Path | None = None,
    *,
    model: Path | None = None,
    entry: str | None = None,
    options: Path | None = None,
    profile: str | None = None,
    seed: int | None = None,
    only: list[str] | None = None,
    log: Path | None = None,
) -> Report:
    """Grade ``notebook`` (or an already saved ``model``, returned by the function ``entry``) for ``exercise``."""
    autograder = course.autograder(exercise)  # also validates the exercise name
    if (notebook is None) == (model is None):
        raise ValueError("give exactly one of notebook= or model=")
    with tempfile.TemporaryDirectory(prefix="deepgrade-") as tmp:
        out = Path(tmp) / "report.json"
        cmd = [
            sys.executable, "-m", "pytest", str(autograder), "-q", "--no-header", "-p", "no:cacheprovider",
            "--rootdir", str(autograder.parent), "-c", os.devnull, "--tb=short",
            "--deepgrade-exercise", exercise, "--deepgrade-course", str(course.root),
            "--deepgrade-report", str(out),
        ]
        cmd += ["--deepgrade-notebook", str(Path(notebook).resolve())] if notebook else ["--deepgrade-model", str(Path(model).resolve())]
        if entry:
            cmd += ["--deepgrade-entry", entry]
        if options:
            cmd += ["--deepgrade-options", str(Path(options).resolve())]
        if profile:
            cmd += ["--deepgrade-profile", profile]
        if seed is not None:
            cmd += ["--deepgrade-seed", str(seed)]
        if only:
            cmd += ["-k", " or ".join(f"test_{name}" for name in only)]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
        proc = subprocess.run(cmd, cwd=course.root, env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if log is not None:
            Path(log).write_text(proc.stdout)
        if not out.is_file():
            tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
            raise GraderError(f"The grader process for {exercise!r} ended (exit code {proc.returncode}) "
                              f"without writing a grade. Its last output:\n{tail}")
        return Report.read(out)
