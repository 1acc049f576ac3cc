"""Finished grades, kept by what they were computed from: a killed batch loses nothing, an unchanged
submission is never graded twice, and two notebooks whose graded code is the same are trained once.

A grade has two names. :func:`grade_key`, known before anything runs, names it by the notebook as handed in
(its code cells, test cells and cells tagged ``deepgrade-skip`` left out, in order): a batch run again finds
its finished grades without starting a jail. :func:`submission_key`, known once the student's jail has run,
names it by what the grade is computed from: the code that ran (the statements the graded functions need,
as the jail reports their digest; the grader never parses a student's code), the models it built (their
``config.json``: layers and compile settings; the weights are the grader's own), the options and the messages
that crossed. Two students whose answers are the same but whose experiments differ share it, and the second
is not trained again. Both keys also hold the exercise,
the profile (the device's, when none is asked for), the seed policy and the grader's version (deepgrade's own
code, Keras and its backend, course.yml, the autograders and the exercise's pretrained base). :class:`ResultStore` keeps one JSON file per key, written
atomically (a temporary file renamed into place): a batch killed at any point leaves every finished grade
whole and nothing half-written. ``deepgrade autograde`` fills it from its workers; nbgrader's TrustedGrade
reads it before grading, so plain ``nbgrader autograde`` reuses a finished grade too.

Only grades the grader finished are kept: a submission whose grading failed for the grader's own reasons
(a worker lost, the grader's time-out) is recorded as zero with the reason, and graded again next time.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

from ..course import LoadedCourse
from ..course.notebooks import runs_in_sandbox
from ..grader.backend import grader_backend
from ..grader.environment import PROFILE_ENV, package_version
from ..protocol import Report, Submission
from ..sandbox.jail import has_gpu_devices

FOLDER = ".deepgrade/grades"  # under the nbgrader course folder
BUILT = "built"  # under FOLDER: the grades by what the student's jail built (BuiltCache)


def seed_policy(seed: int | None) -> str:
    return "random" if seed is None else f"fixed:{seed}"


def graded_code(nb) -> list[str]:
    """What the student's jail runs of ``nb``: the source of each code cell it executes, in order."""
    return [cell.get("source", "") for cell in nb.get("cells", []) if runs_in_sandbox(cell)]


def _digest(paths, root: Path) -> str:
    """sha256 over the files' names (relative to ``root``: the same course elsewhere has the same key) and contents."""
    h = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


@functools.cache
def _folder_digest(folder: Path, pattern: str) -> str:
    folder = Path(folder)
    return _digest((p for p in folder.rglob(pattern) if p.is_file()), folder) if folder.is_dir() else "-"


def grader_version(course: LoadedCourse, exercise: str) -> list[str]:
    """Everything of the grader a grade depends on: deepgrade's own code (an editable install keeps its version
    number across changes), Keras and its backend, course.yml, the exercise's autograders folder and its
    pretrained base."""
    import deepgrade

    ex = course.exercise(exercise)
    autograder = course.autograder(exercise)
    base = "-"
    if ex.transfer is not None and "://" not in ex.transfer.handle:
        base = _folder_digest(Path(course.base_handle(exercise)), "*")
    return [package_version("keras") or "-", grader_backend(),
            _folder_digest(Path(deepgrade.__file__).parent, "*.py"),
            hashlib.sha256(course.path.read_bytes()).hexdigest(),
            _digest(autograder.parent.glob("*.py"), autograder.parent) if autograder.is_file() else "-", base]


def device_profile() -> str:
    """The profile a grade gets when none is asked for, as the key names it: ``$DEEPGRADE_PROFILE``, else by
    whether this machine has an NVIDIA GPU (a grade on a GPU is never reused on a CPU, or the other way)."""
    chosen = os.environ.get(PROFILE_ENV, "").strip()
    if chosen:
        return chosen
    return "device:gpu" if has_gpu_devices() else "device:cpu"


def grade_key(nb, course: LoadedCourse, exercise: str, *, profile: str | None, seed: int | None) -> str:
    """The name of the grade of notebook ``nb`` (a notebook node or dict) under these settings."""
    return _key({"code": graded_code(nb)}, course, exercise, profile, seed)


def submission_key(submission: Submission, course: LoadedCourse, exercise: str, *, profile: str | None,
                   seed: int | None) -> str | None:
    """The name of the grade of a built ``submission`` (see the module's docstring); None when it cannot be named
    (not built by a jail that reported the code it ran, or a model file that cannot be read)."""
    if submission.code is None:
        return None
    models = {}
    for entry, path in submission.models.items():
        try:
            with zipfile.ZipFile(path) as archive:
                config = _canonical(json.loads(archive.read("config.json")), {})
        except (OSError, KeyError, TypeError, ValueError, RecursionError, zipfile.BadZipFile):
            return None
        models[entry] = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
    built = {"ran": submission.code, "models": models, "errors": submission.errors, "failure": submission.failure,
             "options": submission.options, "options_error": submission.options_error}
    return _key({"built": built}, course, exercise, profile, seed)


def _canonical(config, shared: dict):
    """A model's config as the same code builds it in any process: Keras names an object shared by several layers
    (a dtype policy) by its memory address (``shared_object_id``); numbered here in order of appearance."""
    if isinstance(config, dict):
        return {key: (shared.setdefault(value, len(shared)) if key == "shared_object_id" else _canonical(value, shared))
                for key, value in config.items()}
    if isinstance(config, list):
        return [_canonical(value, shared) for value in config]
    return config


def _key(what: dict, course: LoadedCourse, exercise: str, profile: str | None, seed: int | None) -> str:
    parts = {
        **what,
        "exercise": exercise,
        "profile": profile or device_profile(),
        "seed": seed_policy(seed),
        "grader": grader_version(course, exercise),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def as_reused(report: Report, submission: Submission) -> Report:
    """``report``, a grade of the same built submission, told of this notebook: its own jail's time, isolation
    and cells not run."""
    environment = {key: value for key, value in report.environment.items() if key != "notebook"}
    environment.update(sandbox_seconds=round(submission.seconds, 2), reused_grade=True)
    if submission.isolation is not None:
        environment["isolation"] = submission.isolation
    if submission.not_run or submission.notes:
        environment["notebook"] = {"not_run": submission.not_run or "", "notes": list(submission.notes)}
    return report.model_copy(update={"environment": environment})


class ResultStore:
    """Grades by key, one JSON file each, under ``folder``: finished grades in ``results/``, reused by every
    later run; grades the grader could not finish (zero, with the reason) in ``failed/``, read only by the
    gradebook writer of the batch that made them, and graded again by the next run."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    @classmethod
    def of(cls, course_dir: Path) -> "ResultStore":
        return cls(Path(course_dir) / FOLDER)

    def _path(self, key: str, finished: bool = True) -> Path:
        return self.folder / ("results" if finished else "failed") / key[:2] / f"{key}.json"

    def get(self, key: str, *, failed: bool = False) -> Report | None:
        """The finished grade under ``key`` (with ``failed``, else the failed one); None when there is none."""
        for path in [self._path(key)] + ([self._path(key, finished=False)] if failed else []):
            try:
                return Report.from_dict(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue
        return None

    def put(self, key: str, report: Report, *, finished: bool = True) -> None:
        path = self._path(key, finished)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(report.dump(), f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if finished:
            self._path(key, finished=False).unlink(missing_ok=True)

    def __contains__(self, key: str) -> bool:
        return self._path(key).is_file()


class BuiltCache:
    """The grades of built submissions (:func:`submission_key`), kept in the ``built/`` part of the store in
    ``folder`` (beside the grades by notebook), under one batch's settings: what
    :func:`deepgrade.grader.grade_notebook` asks before training. Only finished grades are kept; a store that
    cannot be read or written is passed over (a grade is never lost for want of it)."""

    def __init__(self, folder: Path, course: LoadedCourse, exercise: str, *, profile: str | None,
                 seed: int | None):
        self.store = ResultStore(Path(folder) / BUILT)
        self.course, self.exercise, self.profile, self.seed = course, exercise, profile, seed

    def _key(self, submission: Submission) -> str | None:
        return submission_key(submission, self.course, self.exercise, profile=self.profile, seed=self.seed)

    def get(self, submission: Submission) -> Report | None:
        key = self._key(submission)
        found = self.store.get(key) if key else None
        return as_reused(found, submission) if found is not None else None

    def put(self, submission: Submission, report: Report) -> None:
        key = self._key(submission)
        if key is None or report.environment.get("grader_errors"):
            return
        try:
            self.store.put(key, report)
        except OSError:
            pass
