"""An nbgrader course folder, seen by a batch: its submissions, and the one writer of its gradebook.

:class:`Classroom` reads the course folder's ``nbgrader_config.py`` (and its ``db_url``: SQLite by default,
PostgreSQL or any database nbgrader supports). :meth:`Classroom.jobs` turns each submitted notebook into a
:class:`~.pool.Job`: the notebook as nbgrader's own sanitizing steps leave it (outputs cleared, locked and
test cells restored from the instructor's source), which is exactly what nbgrader's autograde step hands
the trusted grader, and its :func:`~.store.grade_key`.

:meth:`Classroom.record` is the only code that writes grades: it runs nbgrader's own autograde for one
student (``NbGraderAPI.autograde``), whose TrustedGrade step finds the finished grade in the
:class:`~.store.ResultStore` instead of grading again. Writes hold an exclusive lock on a file in the course
folder, so two batches at once take turns; each write is nbgrader's own transaction, so a batch killed
mid-write leaves the previous grade of that student in place.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..course import LoadedCourse, load_course
from ..errors import ConfigError, said
from .pool import Job
from .store import ResultStore, grade_key

LOCK = ".deepgrade/gradebook.lock"


@dataclass(frozen=True)
class Problem:
    """A submission that could not be turned into a job (nbgrader's checks refused it), and why."""

    student: str
    notebook: str
    message: str


class Classroom:
    """The nbgrader course folder ``root`` (holding nbgrader_config.py), for the deepgrade course ``course``."""

    def __init__(self, root: Path, course: LoadedCourse | None = None, *, profile: str | None = None,
                 seed: int | None = None, allow_unisolated: bool | None = None):
        from nbgrader.apps.api import NbGraderAPI
        from nbgrader.coursedir import CourseDirectory
        from traitlets.config import Config
        from traitlets.config.loader import PyFileConfigLoader

        self.root = Path(root).resolve()
        config = Config()
        if (self.root / "nbgrader_config.py").is_file():
            config.merge(PyFileConfigLoader("nbgrader_config.py", path=str(self.root)).load_config())
        config.CourseDirectory.root = str(self.root)
        given = config.TrustedGrade
        if course is None:
            course = load_course(Path(given.course) if given.get("course") else self.root)
        # the batch grades under nbgrader_config.py's settings unless told otherwise, and the writer's TrustedGrade
        # under the batch's, so that both (and a later plain `nbgrader autograde`) name each grade by one key
        profile = profile or given.get("profile") or None
        seed = seed if seed is not None else given.get("seed")
        given.course = str(course.root)
        given.profile = profile or ""
        given.seed = seed
        given.reuse_failed = True  # this batch's zeros (a lost worker, a time-out) are recorded, not graded again
        if allow_unisolated is not None:
            given.allow_unisolated = allow_unisolated
        self.config, self.course, self.profile, self.seed = config, course, profile, seed
        self.coursedir = CourseDirectory(config=config)
        self.api = NbGraderAPI(coursedir=self.coursedir, config=config)
        self.store = ResultStore.of(self.root)

    # -- reading ------------------------------------------------------------------------
    def submissions(self, assignment: str) -> list[tuple[str, Path]]:
        """(student, notebook path) for every submitted notebook of ``assignment``, by student."""
        pattern = self.coursedir.format_path(self.coursedir.submitted_directory, "*", assignment)
        return sorted((Path(path).parent.parent.name, Path(path)) for path in glob.glob(f"{pattern}/*.ipynb"))

    def jobs(self, assignment: str, students: list[str] | None = None) -> tuple[list[Job], list[Problem]]:
        """The submissions of ``assignment`` as jobs, and those nbgrader's sanitizing steps refused."""
        if assignment not in self.course.course.exercises:
            known = ", ".join(self.course.course.exercises)
            raise ConfigError(f"`deepgrade autograde` grades the exercises of course.yml in parallel: expected one "
                              f"of {known}. Received: {assignment!r}.",
                              tip="Quizzes take no training: grade them with `nbgrader autograde`.")
        jobs, problems = [], []
        for student, path in self.submissions(assignment):
            if students and student not in students:
                continue
            try:
                nb = self.sanitized(path, assignment, student)
            except Exception as exc:  # noqa: BLE001 - one notebook nbgrader refuses; the others go on
                problems.append(Problem(student, path.stem, f"nbgrader could not read this notebook ({said(exc)})"))
                continue
            key = grade_key(nb, self.course, assignment, profile=self.profile, seed=self.seed)
            jobs.append(Job(student=student, assignment=assignment, notebook=path.stem,
                            source=json.dumps(nb), key=key))
        return jobs, problems

    def sanitized(self, path: Path, assignment: str, student: str):
        """``path`` after the steps nbgrader runs before grading (``Autograde.sanitize_preprocessors``)."""
        import nbformat
        from nbgrader.converters import Autograde

        steps = self.config.Autograde.get("sanitize_preprocessors") or \
            Autograde.class_traits()["sanitize_preprocessors"].make_dynamic_default()
        nb = nbformat.read(path, as_version=4)
        resources = {"nbgrader": {"student": student, "assignment": assignment, "notebook": path.stem,
                                  "db_url": self.coursedir.db_url}}
        for step in steps:
            nb, resources = step(config=self.config)(nb, resources)
        return nb

    # -- writing ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self):
        lock = self.root / LOCK
        lock.parent.mkdir(parents=True, exist_ok=True)
        with open(lock, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def record(self, assignment: str, student: str) -> str | None:
        """Write ``student``'s grades of ``assignment`` into the gradebook (nbgrader's autograde, reusing the
        stored grades); None when it worked, else nbgrader's reason."""
        with self._locked(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nbgrader's SQLAlchemy session warnings, on every write
            result = self.api.autograde(assignment, student, force=True, create=True)
        if result.get("success"):
            return None
        tail = "\n".join((result.get("error") or result.get("log") or "").strip().splitlines()[-8:])
        return f"nbgrader autograde failed for {student}/{assignment}:\n{tail}"

    def has_grade(self, assignment: str, student: str) -> bool:
        """Whether the gradebook holds a grade of ``student`` for ``assignment``."""
        from nbgrader.api import Gradebook, MissingEntry

        with Gradebook(self.coursedir.db_url, self.coursedir.course_id) as gb:
            try:
                gb.find_submission(assignment, student)
            except MissingEntry:
                return False
        return True

    def recorded(self, assignment: str) -> dict[str, dict]:
        """Per student: total and per-check points, as the gradebook holds them."""
        return gradebook_rows(self.coursedir.db_url, self.coursedir.course_id, assignment)


def gradebook_rows(db_url: str, course_id: str, assignment: str) -> dict[str, dict]:
    """Per student with a submission of ``assignment``, by id: ``{"score", "max_score", "checks"}`` as nbgrader's
    gradebook at ``db_url`` holds them."""
    from nbgrader.api import Gradebook, MissingEntry

    rows = {}
    with Gradebook(db_url, course_id) as gb:
        for student in sorted(gb.students, key=lambda s: s.id):
            try:
                sub = gb.find_submission(assignment, student.id)
            except MissingEntry:
                continue
            rows[student.id] = {"score": sub.score, "max_score": sub.max_score,
                                "checks": {g.name: g.score for nb in sub.notebooks for g in nb.grades}}
    return rows
