"""A jail that stays up to be talked to: frames in on its stdin, frames back on its result pipe.

The persistent grader (:mod:`deepgrade.grader.worker`) and the warm student jail (:class:`.warm.StudentServer`)
run in one; :mod:`.jail` makes it (bubblewrap) and supplies the pieces a one-shot :func:`.jail.run` uses too.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import socket
import subprocess
import threading
import time

from ..protocol.files import RESULT_FD_ENV
from .jail import Jail, PipeReader, kill_group, launched, limits_outside, own_stdout


class Running:
    """A jail that stays up to be talked to (a persistent grader, a warm student process): frames go in on its
    stdin and come back on its result pipe, each at most ``max_frame`` bytes; its output keeps the last
    ``limits.output_kb``. Without bubblewrap (``jailed=False``) the same conversation runs with a plain
    subprocess (``argv`` in the spec's ``cwd``, the jail's resource limits but not its namespaces). Close kills
    it."""

    def __init__(self, spec: Jail, *, max_frame: int, max_total: int | None = None, jailed: bool = True,
                 control: bool = False):
        self.limits = spec.limits
        self.control = None  # with ``control``, the jail's stdin is this socket's peer: messages with descriptors
        peer = None
        if control:
            self.control, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._stack = contextlib.ExitStack()
        try:
            if jailed:
                self.proc, result_fd, self.started = self._stack.enter_context(
                    launched(spec, python=True, stdin=True, control=peer.fileno() if peer else None))
            else:
                self.proc, result_fd, self.started = self._plain(spec)
        except BaseException:
            if self.control is not None:
                self.control.close()
            raise
        finally:
            if peer is not None:
                peer.close()
        self.output = PipeReader(own_stdout(self.proc), self.limits.output_kb * 1024, tail=True)
        self.output.start()
        self.frames: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read_frames, args=(result_fd, max_frame, max_total), daemon=True)
        self._reader.start()

    def _plain(self, spec: Jail):
        result_read, result_write = os.pipe()
        try:
            proc = subprocess.Popen(spec.argv, cwd=spec.cwd, env={**spec.env, RESULT_FD_ENV: str(result_write)},
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    start_new_session=True, pass_fds=(result_write,),
                                    preexec_fn=limits_outside(spec.limits))
        finally:
            os.close(result_write)
        self._stack.callback(kill_group, proc)
        return proc, result_read, time.monotonic()

    def _read_frames(self, fd: int, max_frame: int, max_total: int | None) -> None:
        """Frames from the result pipe into :attr:`frames`, each with its arrival time; None at its end. A
        malformed or oversized frame, or more than ``max_total`` bytes in all (headers included), ends the
        conversation: the jail is killed."""
        total = 0
        with open(fd, "rb", buffering=1 << 16) as pipe:
            while True:
                header = pipe.readline(4096)
                if not header:
                    break
                try:
                    head = json.loads(header)
                    name, size = head["name"], head["size"]
                    if not isinstance(name, str) or not isinstance(size, int) or not 0 <= size <= max_frame:
                        raise ValueError(f"frame of {size} bytes")
                    total += len(header) + size
                    if max_total is not None and total > max_total:
                        raise ValueError(f"{total} bytes in all")
                except (ValueError, KeyError, TypeError):
                    self.frames.put(("", b"malformed or oversized frames", time.monotonic()))
                    self.kill()
                    break
                data = pipe.read(size)
                if len(data) < size:
                    break
                self.frames.put((name, data, time.monotonic()))
        self.frames.put(None)

    def send(self, data: bytes) -> bool:
        """Write to the jail's stdin; False when it no longer reads."""
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
            return True
        except (OSError, ValueError):
            return False

    def send_fds(self, message: dict, fds: list[int]) -> bool:
        """Send ``message`` (JSON) and descriptors ``fds`` on the control socket; False when nobody reads it."""
        try:
            socket.send_fds(self.control, [json.dumps(message).encode()], fds)
            return True
        except OSError:
            return False

    def receive(self, timeout: float | None) -> tuple[str, bytes, float] | None:
        """The next frame (name, data, when it arrived); None when the pipe ended; TimeoutError when none came
        within ``timeout`` s. A name of "" says the frames broke a cap (the jail is killed)."""
        try:
            return self.frames.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError from None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return bytes(self.output.data).decode("utf-8", "replace")

    def kill(self) -> None:
        kill_group(self.proc)

    def close(self) -> None:
        self.kill()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self._stack.close()
        for stream in (self.proc.stdin, self.control):
            try:
                if stream is not None:
                    stream.close()
            except (OSError, ValueError):
                pass
