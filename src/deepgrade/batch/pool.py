"""Grading many submissions at once, on Dask: a local pool sized to the machine, or an existing cluster.

Grading one submission is one function, :func:`grade_job` (a notebook in, a report out), mapped over the
submissions with ``client.submit`` and consumed with ``as_completed``; the pool and the gradebook writer
are around it, never inside it. Each Dask worker process keeps one persistent trusted grader
(:class:`~deepgrade.grader.worker.GraderWorker`: Keras imported and the data loaded once) and one warm
student jail that forks a fresh process for every submission (:mod:`deepgrade.sandbox.warm`). The default pool is a ``distributed.LocalCluster`` of worker processes,
one per core; ``scheduler="tcp://host:8786"`` sends the same tasks to an existing cluster whose workers
have deepgrade installed (Slurm through dask-jobqueue, a GPU box with a worker per GPU: see the README).
"""

from __future__ import annotations

import atexit
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import DeepgradeError, said
from ..protocol import CheckResult, Report


@dataclass(frozen=True)
class Job:
    """One submitted notebook to grade: as the grader will run it (nbgrader's sanitized copy), and its key."""

    student: str
    assignment: str          # the exercise id
    notebook: str            # the notebook's name, without .ipynb
    source: str              # the notebook, as JSON text
    key: str                 # :func:`deepgrade.batch.store.grade_key`


@dataclass(frozen=True)
class Settings:
    """What every task of a batch is graded under (sent with each task)."""

    course: str              # the deepgrade course's folder (course.yml), as the workers see it
    profile: str | None
    seed: int | None
    allow_unisolated: bool | None = None
    threads: int | None = None  # TensorFlow threads per grade; None: the machine's cores / the local workers
    recycle_after: int = 200
    store: str | None = None  # the ResultStore's folder, where workers see it: grades of what was built


@dataclass(frozen=True)
class Graded:
    """What a task sends back: the report, whether it is a finished grade (kept for reuse), and its timing."""

    key: str
    report: dict
    finished: bool
    seconds: float           # the whole task, in the worker
    grader_warm: bool        # the persistent grader was already warm when this grade started


# What a process keeps warm between grades (a Dask worker process, or nbgrader's for a plain autograde): one
# persistent grader per course and settings (and, in deepgrade.sandbox.warm, the warm student jails). Closed at
# exit (and the jails die with the process anyway).
_WORKERS: dict = {}   # (course, jailed, threads, recycle) -> GraderWorker


@atexit.register
def close_kept() -> None:
    """Close what this process keeps warm (its graders and student jails): the next grade starts them again."""
    from ..sandbox.warm import close_all

    for kept in _WORKERS.values():
        kept.close()
    _WORKERS.clear()
    close_all()


def _worker_key(course, jailed: bool, threads: int | None, recycle_after: int) -> tuple:
    return str(course.root), jailed, threads, recycle_after


def worker_for(course, *, jailed: bool, threads: int | None = None, recycle_after: int = 200):
    """This process's persistent trusted grader for ``course`` (started when it first grades, kept warm)."""
    from ..grader.worker import GraderWorker

    key = _worker_key(course, jailed, threads, recycle_after)
    if key not in _WORKERS:
        _WORKERS[key] = GraderWorker(course, jailed=jailed, threads=threads, recycle_after=recycle_after)
    return _WORKERS[key]


def student_for(course, exercise: str):
    """This process's warm student jail for ``exercise`` (:func:`deepgrade.sandbox.warm.server_for`: Keras imported
    once, a fresh fork per notebook), started now so that it warms up while the grader does; None where each
    notebook needs a jail of its own."""
    from ..grader.run import student_jail
    from ..sandbox.warm import server_for

    return server_for(*student_jail(course, exercise))


def failed_report(course, exercise: str, profile: str | None, why: str) -> Report:
    """Zero for every check of ``exercise``, each saying ``why`` (a crash, a time-out, a lost worker)."""
    checks = course.exercise(exercise).checks
    return Report(exercise=exercise, profile=profile or "?", environment={"grader_error": why},
                  checks=[CheckResult(name=name, passed=False, points=0.0, max_points=check.points, message=why)
                          for name, check in checks.items()])


def grade_here(course, exercise: str, notebook: Path, *, profile: str | None, seed: int | None,
               allow_unisolated: bool | None, threads: int | None = None, recycle_after: int = 200,
               store: Path | None = None):
    """Grade someone else's ``notebook`` with this process's persistent grader and a student jail started ahead
    (a Dask worker's task; nbgrader's TrustedGrade): Keras and the data are loaded once per process, and each
    notebook finds its jail warm. Where no jail can be made, refused unless ``allow_unisolated``. ``store``: the
    folder of a :class:`~.store.ResultStore`; a notebook whose graded code and models were graded before under
    these settings takes that grade (:class:`~.store.BuiltCache`)."""
    from ..grader.isolated import isolation_for
    from ..grader.run import grade_notebook
    from .store import BuiltCache

    jailed = isolation_for(course, others=True, allow_unisolated=allow_unisolated).ok
    worker = worker_for(course, jailed=jailed, threads=threads, recycle_after=recycle_after)
    student = student_for(course, exercise) if jailed else None
    cache = BuiltCache(store, course, exercise, profile=profile, seed=seed) if store is not None else None
    return grade_notebook(course, exercise, notebook, profile=profile, seed=seed, others=True,
                          allow_unisolated=allow_unisolated, worker=worker, warm=student, cache=cache)


def grade_job(job: Job, settings: Settings) -> Graded:
    """Grade one submission (runs on a Dask worker). Never raises: a failure is a zero report that says why."""
    from ..course import load_course
    from ..sandbox import isolation

    start = time.monotonic()
    course = load_course(settings.course)
    kept = _WORKERS.get(_worker_key(course, isolation().ok, settings.threads, settings.recycle_after))
    warm = kept is not None and kept.warm  # the grader this grade will use was already warm
    try:
        with tempfile.TemporaryDirectory(prefix="deepgrade-batch-") as tmp:
            path = Path(tmp) / f"{job.notebook}.ipynb"
            path.write_text(job.source)
            report = grade_here(course, job.assignment, path, profile=settings.profile, seed=settings.seed,
                                allow_unisolated=settings.allow_unisolated, threads=settings.threads,
                                recycle_after=settings.recycle_after,
                                store=Path(settings.store) if settings.store else None)
        finished = not report.environment.get("grader_errors")
    except Exception as exc:  # noqa: BLE001 - one submission's failure is recorded; the batch goes on
        why = str(exc) if isinstance(exc, DeepgradeError) else f"the grader failed ({said(exc)})"
        report, finished, warm = failed_report(course, job.assignment, settings.profile, why), False, False
    return Graded(key=job.key, report=report.dump(), finished=finished, seconds=time.monotonic() - start,
                  grader_warm=warm)


class InProcess:
    """The same tasks run one after another in this process, with its warm grader and student jail: what a local
    pool costs (a cluster, and Keras imported again in each worker) only pays when each worker gets enough of
    them (:func:`pool_for`). They run in one background thread (the work itself is in the jails), so that the
    caller records one grade while the next is computed."""

    workers, scheduler = 1, None

    def __enter__(self) -> "InProcess":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def threads(self) -> int | None:
        return None  # one grade at a time: all the cores

    def grade(self, jobs: Iterable[Job], settings: Settings) -> Iterator[tuple[Job, Graded]]:
        """Start grading every job in turn now; iterate over each job with its result, in order."""
        from concurrent.futures import ThreadPoolExecutor

        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deepgrade-grade")
        futures = [(job, executor.submit(grade_job, job, settings)) for job in list(jobs)]

        def results() -> Iterator[tuple[Job, Graded]]:
            try:
                for job, future in futures:
                    yield job, future.result()  # grade_job never raises
            finally:  # the caller stopped early: what has not started never will
                for _, future in futures:
                    future.cancel()
                executor.shutdown(wait=True)

        return results()


MIN_PER_WORKER = 3  # submissions each local worker must get before a pool of them is started


def pool_for(workers: int | None, scheduler: str | None, count: int, min_per_worker: int = MIN_PER_WORKER):
    """Where ``count`` submissions are graded: an existing cluster when given; else a local pool of at most
    ``count // min_per_worker`` workers (of ``workers``, default one per core) when that is two or more; else this
    process (:class:`InProcess`), never slower than a serial run."""
    if scheduler:
        return Pool(workers, scheduler)
    wanted = min(workers or os.cpu_count() or 1, count // max(1, min_per_worker))
    return Pool(wanted) if wanted >= 2 else InProcess()


class Pool:
    """Where a batch's tasks run: ``with Pool(workers=4) as pool: for job, graded in pool.grade(jobs, s): ...``.

    ``scheduler``: the address of an existing Dask scheduler; None starts a LocalCluster of ``workers``
    processes (default: one per core) for the duration of the ``with`` block.
    """

    def __init__(self, workers: int | None = None, scheduler: str | None = None):
        self.workers = workers or os.cpu_count() or 1
        self.scheduler = scheduler
        self.client = self.cluster = None

    def __enter__(self) -> "Pool":
        import logging

        from distributed import Client, LocalCluster

        if self.scheduler:
            self.client = Client(self.scheduler, timeout="30s")
        else:
            self.cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                        dashboard_address=":0", memory_limit=0, silence_logs=logging.ERROR)
            self.client = Client(self.cluster)
        return self

    def __exit__(self, *exc) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def threads(self) -> int | None:
        """TensorFlow threads per grade: the local cores shared among the local workers; a remote cluster's
        workers keep their own default."""
        if self.scheduler:
            return None
        return max(1, (os.cpu_count() or 1) // self.workers)

    def grade(self, jobs: Iterable[Job], settings: Settings) -> Iterator[tuple[Job, Graded]]:
        """Submit every job now; iterate over each job with its result, as they finish (in any order)."""
        by_future = {self.client.submit(grade_job, job, settings, key=f"grade-{job.key}-{job.student}",
                                        pure=False): job for job in jobs}
        return self._results(by_future, settings)

    def _results(self, by_future: dict, settings: Settings) -> Iterator[tuple[Job, Graded]]:
        from distributed import as_completed

        for future in as_completed(by_future):
            job = by_future[future]
            try:
                graded = future.result()
            except Exception as exc:  # noqa: BLE001 - a worker lost (killed, out of memory): this job's zero
                from ..course import load_course

                why = (f"The grading worker was lost while grading this notebook ({said(exc)}); it is graded "
                       "again on the next run.")
                report = failed_report(load_course(settings.course), job.assignment, settings.profile, why)
                graded = Graded(key=job.key, report=report.dump(), finished=False, seconds=0.0,
                                grader_warm=False)
            yield job, graded
