"""``deepgrade demo``: the instructor's round trip with nbgrader, on bundled sample students.

:func:`run_course_demo` (``make demo``) releases every exercise of the course, hands in four sample students
each (honest: the reference answer; wrong: a sample answer of tests/submissions/ that fails a check;
crashing: a notebook whose process kills itself; hostile: one that tries to wipe the gradebook and read the
reference solution), grades each exercise in parallel with ``deepgrade autograde`` (class table, summary,
CSV and PNG), then runs ``nbgrader generate_feedback`` and ``export`` for real.
:func:`run_demo` is the plain-nbgrader round trip of one exercise (``nbgrader autograde``).
Everything is written under ``out`` (default build/demo); the repository's own exercises/ and gradebook are
not touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .course import LoadedCourse, fill, solution_ids, write_submission
from .errors import GraderError

COURSE_ID = "deepgrade-demo"
STUDENTS = {"alice": "correct", "bob": "wrong_layer", "carol": "raises"}


def nbgrader_config(course: LoadedCourse, *, profile: str | None, seed: int | None) -> str:
    lines = [
        "from deepgrade.nbgrader_ext import configure",
        "c = get_config()  # noqa: F821",
        f"c.CourseDirectory.course_id = {COURSE_ID!r}",
        "configure(c)",
        f"c.CourseDirectory.source_directory = {str(course.root / 'solutions')!r}",
        f"c.TrustedGrade.course = {str(course.root)!r}",
    ]
    if profile:
        lines.append(f"c.TrustedGrade.profile = {profile!r}")
    if seed is not None:
        lines.append(f"c.TrustedGrade.seed = {seed}")
    return "\n".join(lines) + "\n"


def fresh_course_folder(course: LoadedCourse, out: Path, *, profile: str | None, seed: int | None) -> Path:
    """``out`` wiped and made an nbgrader course folder of ``course`` (its nbgrader_config.py only)."""
    out = Path(out).resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / "nbgrader_config.py").write_text(nbgrader_config(course, profile=profile, seed=seed))
    return out


def tool_env() -> dict[str, str]:
    """The environment with this Python's scripts first on PATH (nbgrader runs `alembic` from PATH)."""
    bindir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": os.pathsep.join([bindir, os.environ.get("PATH", "")])}


def nbgrader(out: Path, *args: str, console: Console) -> None:
    cmd = [str(Path(sys.executable).parent / "nbgrader"), *args]
    console.print(f"[dim]$ nbgrader {' '.join(args)}[/dim]")
    proc = subprocess.run(cmd, cwd=out, env=tool_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise GraderError(f"`nbgrader {' '.join(args)}` failed with exit code {proc.returncode}:\n"
                          + "\n".join(proc.stdout.splitlines()[-20:]))


def gradebook(out: Path, assignment: str) -> list[dict]:
    """Per student: total and per-check points, as nbgrader recorded them in the demo's SQLite gradebook."""
    from .batch.gradebook import gradebook_rows

    rows = gradebook_rows(f"sqlite:///{out / 'gradebook.db'}", COURSE_ID, assignment)
    return [{"student": student, **row} for student, row in rows.items()]


def run_demo(course: LoadedCourse, out: Path, *, exercise: str = "mlp", profile: str | None = None,
             seed: int | None = None, students: dict[str, str] = STUDENTS, console: Console | None = None) -> list[dict]:
    console = console or Console()
    out = fresh_course_folder(course, out, profile=profile, seed=seed)

    nbgrader(out, "generate_assignment", exercise, "--force", console=console)
    release = out / "exercises" / exercise
    stubs = sorted(release.glob("*.ipynb"))
    if len(stubs) != 1:
        raise GraderError(f"Expected one released notebook in {release}. Received: {[s.name for s in stubs]}.")
    stub = stubs[0]
    for student, answer in students.items():
        answer_file = course.root / "tests" / "submissions" / exercise / f"{answer}.py"
        write_submission(stub, answer_file, out / "submitted" / student / exercise / stub.name)
        console.print(f"[dim]{student} hands in {answer_file.relative_to(course.root)}[/dim]")

    nbgrader(out, "autograde", exercise, "--force", console=console)
    nbgrader(out, "generate_feedback", exercise, "--force", console=console)
    nbgrader(out, "export", console=console)

    rows = gradebook(out, exercise)
    checks = list(course.exercise(exercise).checks)
    table = Table(title=f"nbgrader gradebook: {exercise}", title_justify="left")
    table.add_column("student")
    for name in checks:
        table.add_column(name, justify="right")
    table.add_column("total", justify="right")
    for row in rows:
        table.add_row(row["student"], *(f"{row['checks'].get(n, 0):g}" for n in checks),
                      f"{row['score']:g} / {row['max_score']:g}")
    console.print(table)
    for student in students:
        html = out / "feedback" / student / exercise / f"{stub.stem}.html"
        console.print(f"feedback for {student}: {html}" if html.is_file() else f"[red]no feedback for {student}[/red]")
    console.print(f"grades exported to {out / 'grades.csv'}")
    return rows


WRONG = {"mlp": "wrong_layer", "cnn": "kernel5_no_strided", "rnn": "gru", "regularization": "overfit",
         "transfer": "scratch"}
CRASHING = "import os, signal\n\n\ndef build_model(*base):\n    os.kill(os.getpid(), signal.SIGKILL)\n"
HOSTILE = """import glob, os


def build_model(*base):
    # knows where the class and the course live, and tries to wipe the gradebook and read the solutions
    targets = [{gradebook!r}] + glob.glob("/proc/*/cwd/gradebook.db") + glob.glob("/proc/*/root{gradebook}")
    wiped = 0
    for path in targets:
        try:
            open(path, "w").close()
            wiped += 1
        except OSError:
            pass
    solutions = glob.glob({solutions!r} + "/*/*.ipynb")
    raise RuntimeError(f"hostile: {{wiped}} gradebooks wiped, {{len(solutions)}} solutions read")
"""


def honest(course: LoadedCourse, exercise: str, stub: Path, out: Path) -> None:
    """The stub filled with the reference solution's answer cells."""
    import nbformat

    solution = nbformat.read(course.source_notebook(exercise), as_version=4)
    names = solution_ids(solution)
    answers = {name: cell.source for cell in solution.cells if (name := _id(cell, names))}
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(fill(stub, answers), out)


def _id(cell, names: list[str]) -> str | None:
    grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
    return grade_id if grade_id in names and cell.get("metadata", {}).get("nbgrader", {}).get("solution") else None


def run_course_demo(course: LoadedCourse, out: Path, *, profile: str | None = None, workers: int | None = None,
                    console: Console | None = None) -> dict[str, dict]:
    """Every exercise, four sample students each, graded in parallel into one gradebook; per exercise the
    class summary; then feedback and the export. Returns the gradebook, per exercise and student."""
    from .batch.autograde import autograde_all
    from .batch.gradebook import Classroom

    console = console or Console()
    out = fresh_course_folder(course, out, profile=profile, seed=None)
    exercises = list(course.course.exercises)
    for exercise in exercises:
        nbgrader(out, "generate_assignment", exercise, "--force", console=console)
        stub = next((out / "exercises" / exercise).glob("*.ipynb"))
        folder = out / "submitted"
        honest(course, exercise, stub, folder / "alice" / exercise / stub.name)
        write_submission(stub, course.root / "tests" / "submissions" / exercise / f"{WRONG[exercise]}.py",
                         folder / "bob" / exercise / stub.name)
        hostile = HOSTILE.format(gradebook=str(out / "gradebook.db"), solutions=str(course.root / "solutions"))
        for student, code in {"carol": CRASHING, "mallory": hostile}.items():
            answer = out / "answers" / f"{student}.py"
            answer.parent.mkdir(exist_ok=True)
            answer.write_text(code)
            write_submission(stub, answer, folder / student / exercise / stub.name)
    console.print("alice hands in the reference answer, bob a wrong one, carol a notebook that kills its own "
                  "process, mallory one that tries to wipe the gradebook and read the solutions.")
    classroom = Classroom(out, course, profile=profile)
    autograde_all(classroom, exercises, workers=workers, console=console)  # one pool, warm across exercises
    recorded = {exercise: classroom.recorded(exercise) for exercise in exercises}
    for exercise in exercises:
        nbgrader(out, "generate_feedback", exercise, "--force", console=console)
    nbgrader(out, "export", console=console)
    table = Table(title="nbgrader gradebook: the course", title_justify="left")
    table.add_column("student")
    for exercise in exercises:
        table.add_column(exercise, justify="right")
    for student in sorted({s for rows in recorded.values() for s in rows}):
        table.add_row(student, *(f"{recorded[e][student]['score']:g} / {recorded[e][student]['max_score']:g}"
                                 if student in recorded[e] else "-" for e in exercises))
    console.print(table)
    console.print(f"feedback in {out / 'feedback'}; grades exported to {out / 'grades.csv'}; class summaries in "
                  f"{out / 'reports'}")
    return recorded
