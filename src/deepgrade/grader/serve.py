"""A persistent trusted grader: ``python -m deepgrade.grader.serve COURSE [--jailed]``, talked to by :mod:`.worker`.

It imports Keras, pytest and the autograders' plugin and loads and verifies Fashion-MNIST once, says
``ready`` down the result pipe, then grades one submission after another, each in a **fresh forked
process**: nothing one grade does (a model file that exploited a loader bug included) can reach the next,
whose process starts again from the clean, warm parent. The parent never builds or loads a model (the
TensorFlow runtime, and CUDA on a GPU, start in each child), marks itself non-dumpable (a child cannot
ptrace it or read its memory or file descriptors) and, in a jail, kills every process left in the jail
after each grade (``kill(-1)``: a ``setsid()`` survivor included).

In on stdin, from the trusted worker: frames ``models/<file>`` then :data:`files.GRADE_REQUEST` (a
:class:`GradeRequest` whose model paths are those frame names). Out on ``$DEEPGRADE_RESULT_FD``: ``ready``,
then per request any number of :data:`files.PROGRESS` frames and one :data:`files.REPORT` or
:data:`files.ERROR` (JSON), nothing else.
"""

from __future__ import annotations

import ctypes
import itertools
import json
import os
import select
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

READY = "ready"
PR_SET_DUMPABLE = 4
MAX_REPORT = 1 << 20  # a report is a few KB; more is not read
MAX_PROGRESS = 10_000  # progress lines forwarded per grade (one per epoch and stage)


BUFFER = bytearray(1 << 20)  # every model byte passes through this one buffer, zeroed after each grade


def _receive(stream, folder: Path):
    """The next grade's frames from the worker (trusted) on ``stream``: each model frame is streamed into its
    file in ``folder`` (never held whole in this long-lived process's memory, which every later grade's process
    inherits); returns the request's JSON, or None at the end of the stream."""
    from ..protocol import files

    view = memoryview(BUFFER)
    while True:
        header = stream.readline(4096)
        if not header:
            return None
        head = json.loads(header)
        name, size = head["name"], head["size"]
        if name == files.GRADE_REQUEST:
            data = stream.read(size)
            return data if len(data) == size else None
        target = folder / files.MODELS / Path(name).name
        with open(target, "wb") as out:
            left = size
            while left:
                got = stream.readinto(view[:min(left, len(view))])
                if not got:
                    return None
                out.write(view[:got])
                left -= got


def _send(fd: int, name: str, data: bytes) -> None:
    from ..protocol import files

    with open(fd, "wb", closefd=False) as pipe:
        pipe.write(files.frame(name, data))


def _warm(course_root: str) -> dict:
    """Everything a grade needs that does not depend on the submission, done once."""
    start = time.monotonic()
    from ..course import load_course
    from .data import load
    from .run import _import_keras, prewarm

    _import_keras()
    load()  # verified and decompressed once: every child shares the arrays
    prewarm(load_course(course_root))  # pytest, the plugin and the autograders imported
    return {"pid": os.getpid(), "seconds": round(time.monotonic() - start, 3)}


def _grade_in_child(request, out_fd: int) -> None:
    """The forked child: grade, write the report (or the error) to ``out_fd``, exit. Never returns."""
    from . import progress
    from .run import outcome

    code = 1
    try:  # not dumpable, as its parent: nothing it starts can ptrace it or read its memory or descriptors
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        with open(out_fd, "wb") as pipe:  # buffered: every line is written whole, a signal or not
            def say(line: dict) -> None:
                pipe.write(json.dumps(line).encode() + b"\n")
                pipe.flush()

            progress.sink = lambda said: say({"progress": said.model_dump()})
            name, text, code = outcome(request)
            progress.sink = None
            say({"name": name, "text": text})
    finally:
        os._exit(code)


class _Lines:
    """The child's output, line by line: progress lines go on at once (``forward``, at most MAX_PROGRESS of
    them, each under 4 KB); the rest is its answer, kept up to MAX_REPORT bytes."""

    def __init__(self, forward):
        self.forward, self.pending, self.answer, self.sent = forward, bytearray(), bytearray(), 0

    def feed(self, chunk: bytes) -> None:
        self.pending += chunk
        while (end := self.pending.find(b"\n")) >= 0:
            self._line(bytes(self.pending[:end]))
            del self.pending[:end + 1]
        if len(self.pending) > MAX_REPORT:
            del self.pending[MAX_REPORT:]

    def _line(self, line: bytes) -> None:
        if line.startswith(b'{"progress"'):
            if len(line) < 4096 and self.sent < MAX_PROGRESS:
                self.sent += 1
                self.forward(line[len(b'{"progress": '):-1])
        elif len(self.answer) + len(line) <= MAX_REPORT:
            self.answer += line

    def end(self) -> bytearray:
        self._line(bytes(self.pending))
        self.pending[:] = bytes(len(self.pending))
        return self.answer


def _collect(pid: int, fd: int, jailed: bool, forward=lambda line: None) -> tuple[bytearray, int]:
    """Read the child's answer while it runs (its progress lines go on at once, through ``forward``). The
    moment it has ended, kill whatever it left behind (always, however its pipe ended); then stop at the pipe's
    end, or 5 s later if something the sweep cannot reach still holds it. A child that closed its pipe early is
    waited for 30 s at most. (data, wait status)"""
    lines = _Lines(forward)
    status, closed, give_up = None, False, None
    while True:
        if status is None:
            done, status_now = os.waitpid(pid, os.WNOHANG)
            if done:
                status, give_up = status_now, time.monotonic() + 5
                _sweep(pid, jailed)
        if closed and status is not None:
            break
        if give_up is not None and time.monotonic() > give_up:
            break
        if closed:
            time.sleep(0.01)
            continue
        if select.select([fd], [], [], 0.05)[0]:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                closed = True
                give_up = give_up or time.monotonic() + 30
            else:
                lines.feed(chunk)
    os.close(fd)
    if status is None:
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        _sweep(pid, jailed)
    return lines.end(), status


def _sweep(pid: int, jailed: bool) -> None:
    """Kill every process a grade left: in the jail, all but this one (pid 1 is bubblewrap's); outside, the
    child's process group (the only reach a plain process has without harming the host)."""
    if jailed and os.getuid() != 0:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
    else:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    while True:  # reap what was ours
        try:
            done, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if not done:
            break


def _grade(request, out_fd: int, jailed: bool, folder: Path) -> tuple[str, bytes]:
    from ..protocol import files

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        os.close(out_fd)
        os.chdir(folder)
        if not jailed:
            os.setpgid(0, 0)
        _grade_in_child(request, write_fd)
    os.close(write_fd)
    data, status = _collect(pid, read_fd, jailed, lambda line: _send(out_fd, files.PROGRESS, line))
    try:
        answer = json.loads(data)
        name, text = answer["name"], answer["text"]
        if not isinstance(name, str) or not isinstance(text, str):
            raise TypeError("not a grade")
        return name, text.encode()
    except (ValueError, KeyError, TypeError):
        how = (f"was killed by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
               else f"exited with code {os.WEXITSTATUS(status)}")
        from ..errors import GraderError
        from .run import error_text

        text, _ = error_text(GraderError(f"The grading process {how} before it sent a grade: the model file crashed "
                                         "or killed the grader, or it ran out of memory."))
        return files.ERROR, text.encode()
    finally:
        data[:] = bytes(len(data))


def _wipe(work: Path) -> None:
    """In the jail, after each grade: nothing a grade wrote outlives it (its folder, /tmp, the working folder);
    the read-only mounts (the data) stay."""
    def clear(root: Path) -> None:
        for entry in root.iterdir():
            if entry == work or os.path.ismount(entry):
                continue
            if entry.is_dir() and not entry.is_symlink():
                clear(entry)
                try:
                    entry.rmdir()
                except OSError:
                    pass  # it holds a mount point
            else:
                entry.unlink(missing_ok=True)

    for root in (Path("/tmp"), Path.cwd(), work):
        clear(root)


def main(argv: list[str]) -> int:
    from ..protocol import GradeRequest, files

    jailed = "--jailed" in argv
    out_fd = int(os.environ[files.RESULT_FD_ENV])
    ready = _warm(argv[0])
    ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    _send(out_fd, READY, json.dumps(ready).encode())
    work = Path(tempfile.mkdtemp(prefix="grades-"))
    for count in itertools.count():
        folder = work / f"grade-{count}"
        (folder / files.MODELS).mkdir(parents=True)
        data = _receive(sys.stdin.buffer, folder)
        if data is None:
            return 0
        request = GradeRequest.model_validate_json(data)
        placed = {entry: folder / files.MODELS / Path(path).name for entry, path in request.submission.models.items()}
        request = request.model_copy(update={"submission": request.submission.model_copy(update={"models": placed})})
        reply, text = _grade(request, out_fd, jailed, folder)
        BUFFER[:] = bytes(len(BUFFER))
        if jailed:
            _wipe(work)
        else:
            shutil.rmtree(folder, ignore_errors=True)
        _send(out_fd, reply, text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
