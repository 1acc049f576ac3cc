"""``deepgrade autograde ASSIGNMENT``: grade a class in parallel, record it in nbgrader's gradebook, summarize.

1. Every submission becomes a :class:`~.pool.Job` keyed on what it is graded from
   (:meth:`~.gradebook.Classroom.jobs`).
2. Grades already in the :class:`~.store.ResultStore` are not computed again (a rerun after a kill, an
   unchanged submission); the rest go to the pool (:class:`~.pool.Pool`: local processes or a Dask
   cluster), and each is stored the moment it arrives.
3. This process alone writes the gradebook, one student at a time as grades arrive
   (:meth:`~.gradebook.Classroom.record`).
4. The class summary is printed and written as CSV and PNG (:mod:`.summary`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from ..protocol import Report
from .gradebook import Classroom
from .pool import MIN_PER_WORKER, Graded, Settings, failed_report, pool_for
from .summary import Row, Summary


@dataclass(frozen=True)
class Outcome:
    summary: Summary
    graded: list[Graded]     # what the pool computed in this run (empty when everything was reused)
    csv: Path
    png: Path


def autograde(classroom: Classroom, assignment: str, **options) -> Outcome:
    """Grade every submission of ``assignment`` (see :func:`autograde_all`)."""
    return autograde_all(classroom, [assignment], **options)[assignment]


def autograde_all(classroom: Classroom, assignments: list[str], *, workers: int | None = None,
                  scheduler: str | None = None, students: list[str] | None = None, out: Path | None = None,
                  console=None, allow_unisolated: bool | None = None, recycle_after: int = 200,
                  min_per_worker: int = MIN_PER_WORKER) -> dict[str, Outcome]:
    """Grade every submission of each of ``assignments`` in one pool (its workers stay warm from one assignment
    to the next), record each grade as it arrives, and summarize each assignment. A local pool is started only
    when each of its workers gets ``min_per_worker`` submissions to grade (:func:`~.pool.pool_for`); else they
    are graded in this process, one at a time."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..grader.isolated import isolation_for

    console = console or Console()
    course = classroom.course
    isolation_for(course, others=True, allow_unisolated=allow_unisolated)  # refuse before starting anything
    store = classroom.store
    rows: dict[tuple[str, str], Row] = {}
    jobs, problems = [], []
    for assignment in assignments:
        found, refused = classroom.jobs(assignment, students)
        jobs += found
        problems += [(assignment, problem) for problem in refused]
    stored = {job.key: store.get(job.key) for job in jobs}
    done = [job for job in jobs if stored[job.key] is not None]
    same: dict[str, list] = {}  # identical code under the same settings is graded once, recorded for each
    for job in jobs:
        if stored[job.key] is None:
            same.setdefault(job.key, []).append(job)
    todo = [group[0] for group in same.values()]
    graded_now: dict[str, list[Graded]] = {assignment: [] for assignment in assignments}
    chosen = pool_for(workers, scheduler, len(todo), min_per_worker) if todo else None
    where = (f" on {scheduler}" if scheduler else " in this process, one at a time" if chosen.workers == 1
             else f" with {chosen.workers} local workers") if chosen else ""
    console.print(f"{', '.join(assignments)}: {len(jobs)} submissions, {len(done)} already graded, "
                  f"{len(todo)} to grade{where}")

    def record(assignment: str, student: str, report: Report, reused: bool, finished: bool = True) -> None:
        if not finished and classroom.has_grade(assignment, student):  # a lost worker never replaces a grade
            why = report.environment.get("grader_error", "the grader could not finish")
            rows[assignment, student] = Row(student, report, reused=False,
                                            recorded=f"kept the gradebook's earlier grade: {why}")
            return
        rows[assignment, student] = Row(student, report, reused=reused,
                                        recorded=classroom.record(assignment, student))

    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task(f"grading {', '.join(assignments)}", total=len(jobs) + len(problems))
        with chosen if chosen is not None else contextlib.nullcontext() as pool:
            results = iter(())
            if pool is not None:  # submitted now; the stored ones are recorded meanwhile
                results = pool.grade(todo, Settings(course=str(course.root), profile=classroom.profile,
                                                    seed=classroom.seed, allow_unisolated=allow_unisolated,
                                                    threads=pool.threads(), recycle_after=recycle_after,
                                                    store=str(store.folder)))
            for job in done:
                record(job.assignment, job.student, stored[job.key], reused=True)
                progress.advance(bar)
            for assignment, problem in problems:
                record(assignment, problem.student,
                       failed_report(course, assignment, classroom.profile, problem.message), reused=False)
                progress.advance(bar)
            for job, graded in results:
                report = Report.from_dict(graded.report)
                store.put(job.key, report, finished=graded.finished)
                graded_now[job.assignment].append(graded)
                for twin in same[job.key]:
                    record(job.assignment, twin.student, report, reused=twin is not job, finished=graded.finished)
                    progress.advance(bar)
    outcomes = {}
    for assignment in assignments:
        mine = [row for (a, _), row in sorted(rows.items()) if a == assignment]
        summary = Summary(assignment, list(course.exercise(assignment).checks), mine)
        folder = (out / assignment if out and len(assignments) > 1 else out) or classroom.root / "reports" / assignment
        csv, png = summary.write_csv(folder / "summary.csv"), summary.write_png(folder / "summary.png")
        summary.render(console)
        console.print(f"class summary written to {csv} and {png}")
        outcomes[assignment] = Outcome(summary, graded_now[assignment], csv, png)
    return outcomes
