"""``deepgrade demo``: the instructor's round trip with nbgrader, on bundled sample students.

Releases the stub from solutions/, hands in three sample submissions
(tests/submissions/<exercise>/), runs ``nbgrader autograde``,
``generate_feedback`` and ``export`` for real, and prints the gradebook.
Everything is written under ``out`` (default build/demo); the repository's own
exercises/ and gradebook are not touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .course import LoadedCourse, write_submission
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
    """Per student: total and per-check points, as nbgrader recorded them."""
    from nbgrader.api import Gradebook

    rows = []
    with Gradebook(f"sqlite:///{out / 'gradebook.db'}", COURSE_ID) as gb:
        for student in sorted(gb.students, key=lambda s: s.id):
            sub = gb.find_submission(assignment, student.id)
            checks = {g.name: g.score for nb in sub.notebooks for g in nb.grades}
            rows.append({"student": student.id, "score": sub.score, "max_score": sub.max_score, "checks": checks})
    return rows


def run_demo(course: LoadedCourse, out: Path, *, exercise: str = "mlp", profile: str | None = None,
             seed: int | None = None, students: dict[str, str] = STUDENTS, console: Console | None = None) -> list[dict]:
    console = console or Console()
    out = Path(out).resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / "nbgrader_config.py").write_text(nbgrader_config(course, profile=profile, seed=seed))

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
