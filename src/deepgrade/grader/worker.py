"""A persistent trusted grader, from the side that sends it work: :class:`GraderWorker`.

The worker starts :mod:`.serve` once, in the grader jail (course, Fashion-MNIST and the pretrained bases
read-only, no network; or, where no jail can be made and the instructor opted out, a plain process), and
sends it submission after submission: each model file goes in as bytes on its stdin, each report comes back
as JSON on its result pipe. Keras and the data are imported and loaded once per worker, not once per grade;
each grade still runs in a fresh process forked from the warm one. After ``recycle_after`` grades, a grade
over the time limit, or a server that died, the next grade starts a new one.

``start()`` returns at once: a worker started before the student's notebook runs is warm by the time its
model is built (``deepgrade check`` overlaps the two).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

from ..course import LoadedCourse
from ..errors import ConfigError, DeepgradeError, GraderError
from ..protocol import GradeRequest, Report, Submission, files

INSIDE = "/grade"          # the grader jail's working directory
KERAS_HOME = "/tmp/keras"  # the grader jail's Keras cache (tmpfs), with Fashion-MNIST bound read-only in it
RECYCLE_AFTER = 200        # grades per server before a fresh one


class GraderWorker:
    """One persistent trusted grader for ``course``.

    ``jailed``: None decides from :func:`deepgrade.sandbox.jail.isolation` (the caller has already refused
    or accepted grading without one). ``threads``: the TensorFlow/oneDNN threads each grade may use (a pool
    of W workers on C cores gives each C // W); None leaves the library's default. ``backend``: the grader's
    Keras backend (default :func:`.backend.grader_backend`); ``gpu_share``: how many workers share one GPU.
    """

    def __init__(self, course: LoadedCourse, *, jailed: bool | None = None, threads: int | None = None,
                 recycle_after: int = RECYCLE_AFTER, backend: str | None = None, gpu_share: int = 1):
        from .backend import grader_backend

        self.course, self.threads, self.recycle_after = course, threads, recycle_after
        self.backend, self.gpu_share = grader_backend(backend), gpu_share
        self._jailed = jailed
        self._server = None
        self._ready = False
        self._graded = 0
        self._lock = threading.Lock()
        self.warmup_seconds: float | None = None  # the last server's import + data load, as it measured it

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def jailed(self) -> bool:
        if self._jailed is None:
            from ..sandbox import jail

            self._jailed = jail.isolation().ok
        return self._jailed

    def start(self) -> "GraderWorker":
        """Start the server if none runs (returns at once; it warms up in the background)."""
        if self._server is None:
            self._server = self._launch()
            self._graded = 0
            self._ready = False
        return self

    @property
    def warm(self) -> bool:
        """A server is up and has finished warming up."""
        return self._server is not None and self._ready and self._server.alive()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def __enter__(self) -> "GraderWorker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def _launch(self):
        from ..sandbox import GRADER, Limits, jail
        from ..sandbox.running import Running
        from .backend import process_env

        gpu = self.jailed and jail.has_gpu_devices()
        limits = GRADER if not gpu else Limits.of("grader", memory_limit_mb=0)  # CUDA reserves huge address space
        env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": "/tmp", "TMPDIR": "/tmp",
               "MPLCONFIGDIR": "/tmp/matplotlib", "MPLBACKEND": "Agg",
               "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}
        for name in ("CUDA_VISIBLE_DEVICES", "DEEPGRADE_PROFILE", "DEEPGRADE_FASTFIT"):
            if name in os.environ:
                env[name] = os.environ[name]
        env.update(process_env(self.backend, self.threads, self.gpu_share if jail.has_gpu_devices() else 0))
        argv = [sys.executable, "-P", "-m", "deepgrade.grader.serve", str(self.course.root)]  # -P: not the cwd on sys.path
        max_frame = limits.return_mb * 2**20
        if not self.jailed:
            from .data import keras_home

            env.update(KERAS_HOME=str(keras_home()), HOME=os.environ.get("HOME", "/tmp"),
                       TMPDIR=os.environ.get("TMPDIR", "/tmp"))
            if "PYTHONPATH" in os.environ:  # a plain process finds deepgrade where its caller does (carried wheels)
                env["PYTHONPATH"] = os.environ["PYTHONPATH"]
            env.pop("MPLCONFIGDIR")
            spec = jail.Jail(argv=argv, cwd=str(self.course.root), env=env, limits=limits)
            return Running(spec, max_frame=max_frame, jailed=False)
        from .data import SUBDIR, VERIFIED_ENV, install

        env.update({"KERAS_HOME": KERAS_HOME, VERIFIED_ENV: "1"})  # install() verifies them now, below
        mounts = [jail.Mount(self.course.root, str(self.course.root)),
                  jail.Mount(install(), f"{KERAS_HOME}/{SUBDIR}")]
        for base in self._bases():
            mounts.append(jail.Mount(base, str(base)))
        spec = jail.Jail(argv=[*argv, "--jailed"], cwd=INSIDE, env=env, limits=limits, mounts=mounts, gpu=gpu)
        try:
            return Running(spec, max_frame=max_frame)
        except OSError as exc:
            raise GraderError(f"Could not start the grader's sandbox (bubblewrap): {exc}.") from exc

    def _bases(self) -> list[Path]:
        """The course's pretrained bases that live outside the course folder (bound read-only at their paths)."""
        from ..pretrained import resolve

        found = []
        for name, ex in self.course.course.exercises.items():
            if ex.transfer is not None and "://" not in ex.transfer.handle:
                base = resolve(self.course.base_handle(name))
                if not base.is_relative_to(self.course.root) and base not in found:
                    found.append(base)
        return found

    # -- grading -----------------------------------------------------------------------
    def grade(self, exercise: str, submission: Submission, *, profile: str | None = None,
              seed: int | None = None, only: list[str] | None = None, train: bool = True,
              on_progress=None, retry: bool = True) -> Report:
        """The trusted grader's report on ``submission`` (its model files are read here and sent as bytes).

        ``train=False``: only the checks that do not train (the others are listed in ``environment.deferred``).
        ``on_progress(Progress)`` is called, in this thread, as the grade goes on (loading, each epoch, ...).
        """
        with self._lock:
            if self._server is not None and (not self._server.alive() or self._graded >= self.recycle_after):
                self.close()
            self.start()
            server, limits = self._server, self._server.limits
            try:
                self._wait_ready(server, limits.time_limit_s)
                models, frames = {}, []
                for entry, path in submission.models.items():
                    name = f"{files.MODELS}/{files.model_file(entry)}"
                    frames.append(files.frame(name, Path(path).read_bytes()))
                    models[entry] = Path(name)
                request = GradeRequest(course=self.course.root, exercise=exercise, profile=profile, seed=seed,
                                       only=only, train=train, retry=retry, submission=submission.model_copy(update={"models": models, "log": ""}))
                frames.append(files.frame(files.GRADE_REQUEST, request.model_dump_json().encode()))
                if not server.send(b"".join(frames)):
                    raise self._died(exercise, "stopped reading")
                answer = self._answer(server, exercise, limits.time_limit_s, on_progress)
            except BaseException:
                self.close()  # a server in an unknown state is never reused
                raise
            self._graded += 1
        return answer

    def _wait_ready(self, server, timeout: float) -> None:
        if self._ready:
            return
        from .serve import READY

        try:
            got = server.receive(timeout)
        except TimeoutError:
            raise GraderError(f"The grader did not start within {timeout:g} s (importing Keras, loading "
                              "Fashion-MNIST).") from None
        if got is None or got[0] != READY:
            raise self._died(None, "ended while starting")
        self.warmup_seconds = json.loads(got[1]).get("seconds")
        self._ready = True

    def _answer(self, server, exercise: str, timeout: float, on_progress=None) -> Report:
        from ..protocol import Progress

        deadline = time.monotonic() + timeout
        while True:
            try:
                got = server.receive(max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise GraderError(f"The grader ran over its time limit of {timeout:g} s on {exercise!r}.") from None
            if got is None or got[0] != files.PROGRESS:
                break
            if on_progress is not None:
                try:
                    said = Progress.model_validate_json(got[1])
                except ValueError:
                    continue  # progress is information only
                on_progress(said)
        if got is None or got[0] not in (files.REPORT, files.ERROR):
            raise self._died(exercise, "ended without sending a grade")
        name, data = got[0], got[1]
        if name == files.ERROR:
            error = json.loads(data)
            kind = {"ConfigError": ConfigError, "GraderError": GraderError}.get(error.get("kind"), DeepgradeError)
            raise kind(error.get("message", "the grader failed"), tip=error.get("tip"))
        return Report.from_dict(json.loads(data))

    def _died(self, exercise: str | None, how: str) -> GraderError:
        time.sleep(0.2)  # let the last output arrive
        tail = "\n".join(self._server.log().strip().splitlines()[-15:]) if self._server else ""
        what = f" on {exercise!r}" if exercise else ""
        return GraderError(f"The grader's process {how}{what}. Its last output:\n{tail}")
