"""The student's side as cheap as the grader's: a warm student jail per process, one fresh fork per submission.

:class:`StudentServer` starts :mod:`.forked` in the student's jail (the same limits, binds and environment as a
jail started for one notebook): Python, Keras, TensorFlow and IPython are imported once, and each submission
runs in a process forked from that warm one, in namespaces and tmpfs mounts of its own (:mod:`.forked` says
what each one gets), so that a class pays for its trainings, not for a Python start and a TensorFlow import
per notebook. The notebook goes in, and the output and the returned files come out, on pipes of the
submission's own, read here with the same caps as a one-shot jail; the server in the middle never sees them.

:func:`server_for` keeps this process's servers (a Dask worker's, nbgrader's, ``deepgrade check``'s), at most
:data:`KEPT` of them. Where a submission's namespaces cannot be made (the kernel refuses nested user
namespaces), or ``DEEPGRADE_WARM_STUDENT=off``, it gives None and each notebook gets a jail of its own, as
before; a server that dies or breaks is replaced, and the submission runs in a jail of its own.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path

from ..errors import GraderError
from ..protocol import ChildRequest, files
from . import jail
from .policy import Limits

WARM_ENV = "DEEPGRADE_WARM_STUDENT"  # "off": a jail of its own per notebook
HOLD = "/run/deepgrade"              # where the server's jail sees the base and the data, bound again per submission
KEPT = 2                             # servers kept per process (one per exercise's limits and base)
GRACE_S = 30                         # the runner's margin over the server's own time limit
WARMUP_S = 300                       # the most a server may take to import Keras (not a notebook's time)


class ServerLost(Exception):
    """The server could not run this submission (it died, or its namespaces failed): run it in a jail of its own."""


class StudentServer:
    """A warm student jail for ``limits``, ``base`` and ``data``, running any number of submissions, one at a time.

    Started at once (it warms up in the background); :meth:`run` waits for it. ``nested`` is False (and ``why``
    says why) where it cannot run them (``refused``: the kernel refuses their namespaces here): the caller then
    uses a jail of its own.
    """

    def __init__(self, limits: Limits, base: Path | None, data: Path | None):
        from .runner import DATA_SUBDIR, WORKDIR, scrubbed_env
        from .running import Running

        self.limits, self.base, self.data = limits, base, data
        self.ran = 0
        self.warmup_seconds: float | None = None
        self.nested: bool | None = None
        self.refused = False  # the kernel refused a notebook's namespaces here (not: this server failed to start)
        self.why = ""
        self._lock = threading.Lock()
        binds, mounts = [], []
        for source, name, dest in ((base, "base", files.BASE), (data, "data", DATA_SUBDIR)):
            if source is not None:
                mounts.append(jail.Mount(Path(source), f"{HOLD}/{name}"))
                binds.append([f"{HOLD}/{name}", dest])
        spec = {"workdir": WORKDIR, "scratch_mb": limits.scratch_mb, "tmp_mb": limits.tmp_mb,
                "time_limit_s": limits.time_limit_s, "binds": binds}
        spec_jail = jail.Jail(argv=[sys.executable, "-m", "deepgrade.sandbox.forked", json.dumps(spec)], cwd=WORKDIR,
                              env=scrubbed_env(Path(WORKDIR), tmp="/tmp"), limits=limits, mounts=mounts)
        try:
            self.running = Running(spec_jail, max_frame=1 << 16, control=True)
        except OSError as exc:
            raise GraderError(f"Could not start the student's sandbox (bubblewrap): {exc}.") from exc

    def fits(self, limits: Limits, base: Path | None, data: Path | None) -> bool:
        return (self.limits, self.base, self.data) == (limits, base, data) and self.running.alive()

    def ready(self) -> bool:
        """Wait until it is warm: True when it can run submissions (:attr:`why` says why not)."""
        from .forked import READY

        if self.nested is None:
            try:
                got = self.running.receive(WARMUP_S)
            except TimeoutError:
                got = None
            if got is None or got[0] != READY:
                tail = "\n".join(self.running.log().strip().splitlines()[-5:])
                self.nested, self.why = False, f"the warm student jail did not start: {tail or 'no output'}"
            else:
                said = json.loads(got[1])
                self.nested, self.why = bool(said.get("nested")), said.get("why") or ""
                self.refused = not self.nested
                self.warmup_seconds = said.get("seconds")
        return self.nested and self.running.alive()

    def close(self) -> None:
        self.running.close()

    def run(self, request: ChildRequest, notebook: Path) -> jail.Ran:
        """Run one submission: ``notebook`` and ``request`` in a fresh fork. What came back, as :func:`jail.run`
        says it; :class:`ServerLost` when the server could not run it (the caller runs it in a jail of its own)."""
        with self._lock:
            if not self.ready():
                raise ServerLost(self.why)
            return self._run(request, notebook)

    def _run(self, request: ChildRequest, notebook: Path) -> jail.Ran:
        from .forked import DONE, SETUP_FAILED

        limits, running = self.limits, self.running
        pipes = [os.pipe() for _ in range(3)]  # the notebook in, the result and the output out
        (notebook_in, notebook_out), (result_in, result_out), (output_in, output_out) = pipes
        start = time.monotonic()
        try:
            sent = running.send_fds({"request": request.model_dump_json()}, [notebook_in, result_out, output_out])
        finally:
            for fd in (notebook_in, result_out, output_out):
                os.close(fd)
        stopped: list[str] = []

        def over() -> None:
            stopped.append("returned")
            running.send_fds({"kill": True}, [])

        output = jail.PipeReader(output_in, limits.output_kb * 1024)
        returned = jail.PipeReader(result_in, limits.return_mb * 2**20, over=over, stop=True)  # held, then killed
        writer = threading.Thread(target=_write_all, args=(notebook_out, notebook.read_bytes()), daemon=True)
        for thread in (output, returned, writer):
            thread.start()
        done = None
        try:
            while sent:
                got = running.receive(limits.time_limit_s + GRACE_S)
                if got is None or got[0] == DONE or not got[0]:
                    done = json.loads(got[1]) if got and got[0] == DONE else None
                    break
        except TimeoutError:
            stopped.append("time")
        if done is None:  # the server is lost: nothing it runs can be trusted to end
            self.close()
        output.join(10)
        returned.join(10)
        text = jail.output_text(output, limits)
        self.ran += 1
        if done is None and not stopped:
            raise ServerLost(f"the warm student jail ended while running a notebook: {running.log()[-2000:]}")
        if done is not None and done.get("code") == SETUP_FAILED:
            self.close()
            raise ServerLost(text[-2000:])
        reason = stopped[0] if stopped else ("time" if done.get("stopped") == "time" else None)
        code = None if reason else done.get("code")
        return jail.Ran(code=code, seconds=time.monotonic() - start, output=text,
                        returned=bytes(returned.data) if reason != "returned" else b"", stopped=reason)


def _write_all(fd: int, data: bytes) -> None:
    try:
        with open(fd, "wb") as pipe:
            pipe.write(data)
    except OSError:
        pass  # the submission ended (or was killed) before reading it all


_SERVERS: OrderedDict = OrderedDict()  # (limits, base, data) -> StudentServer, the latest used last
_LOCK = threading.Lock()
_UNAVAILABLE: list[str] = []           # why a server cannot be used here (found once per process)


def server_for(limits: Limits, base: Path | None, data: Path | None) -> StudentServer | None:
    """This process's warm student jail for these limits, base and data (started now if none runs), or None
    where none can be used (``DEEPGRADE_WARM_STUDENT=off``, or submissions' namespaces refused here)."""
    if os.environ.get(WARM_ENV, "").strip() == "off" or _UNAVAILABLE:
        return None
    key = (limits, None if base is None else Path(base), None if data is None else Path(data))
    with _LOCK:
        server = _SERVERS.pop(key, None)
        if server is not None and not server.running.alive():
            server.close()
            server = None
        if server is None:
            server = StudentServer(*key)
        _SERVERS[key] = server
        while len(_SERVERS) > KEPT:
            _SERVERS.popitem(last=False)[1].close()
    return server


def unavailable(why: str) -> None:
    """Submissions' namespaces cannot be made here: every later notebook of this process gets its own jail."""
    if not _UNAVAILABLE:
        _UNAVAILABLE.append(why)


def close_all() -> None:
    with _LOCK:
        while _SERVERS:
            _SERVERS.popitem()[1].close()


def _at_exit() -> None:
    try:
        close_all()
    except (OSError, subprocess.SubprocessError):
        pass


atexit.register(_at_exit)
