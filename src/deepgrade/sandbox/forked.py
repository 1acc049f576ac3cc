"""The student's warm jail: ``python -m deepgrade.sandbox.forked SPEC``, talked to by :class:`.warm.StudentServer`.

It imports what every notebook of the course imports (Keras and TensorFlow, IPython, nbformat) once, marks
itself non-dumpable, says ``ready`` and then runs one submission after another, each in a process forked
from it that no other submission has touched. It never runs student code, and no byte of a submission passes
through it: the notebook comes in, and the output and the result go out, on pipes the runner hands over per
submission (``SCM_RIGHTS`` on its control socket, its stdin) straight to the submission's processes.

Each submission gets namespaces of its own, nested in the jail's: a user namespace, and in it pid, ipc, net
and mount namespaces.

- A fresh size-capped tmpfs working directory, ``/tmp`` and ``/dev/shm``, with the course's base and the data
  bound read-only into it again: nothing one submission writes is seen by the next, and the kernel frees it
  all when the submission ends.
- Its own pid namespace, whose first process only reaps: when the student's process ends, the kernel kills
  everything it left (``setsid()`` or not), and no process of the submission can name this server to signal it;
  the server kills every process left in the jail after each submission too (``kill(-1)``).
- Its own SysV IPC and loopback network.
- No capabilities (dropped, with ``no_new_privs``) and only fds 0-3 when the notebook runs.

The jail's resource limits hold as in a jail started for the notebook (per process, or per the jail's host
uid); its wall-clock limit is kept here (the submission killed) and, with a margin, by the runner.

Control, in on fd 0 (a SOCK_SEQPACKET socket): ``{"request": ChildRequest JSON}`` with the fds
[notebook (read), result (write), output (write)], or ``{"kill": true}`` during a submission. Out on
``$DEEPGRADE_RESULT_FD``: :data:`READY` once (JSON: seconds, nested, why), then per submission :data:`DONE`
(JSON: code, seconds, stopped).
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import socket
import sys
import time
from pathlib import Path

READY, DONE = "ready", "done"
NEW_NAMESPACES = 0x10000000 | 0x20000000 | 0x08000000 | 0x40000000 | 0x00020000  # user, pid, ipc, net, mount
MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 4, 24, 38
SETUP_FAILED = 125  # the exit code of a submission whose namespaces could not be made (said on its output)
RESULT_FD = 3       # the result pipe's fd in the student's process
SYS_OPEN_TREE, SYS_MOVE_MOUNT = 428, 429  # x86_64 and aarch64 alike (Linux 5.2)
OPEN_TREE_CLONE, AT_RECURSIVE, AT_FDCWD, MOVE_MOUNT_F_EMPTY_PATH = 1, 0x8000, -100, 4

_libc = ctypes.CDLL(None, use_errno=True)


def _check(code: int, what: str) -> None:
    if code != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


def _own_namespaces(spec: dict) -> None:
    """In the submission's first process: new namespaces, fresh tmpfs mounts, the read-only binds, loopback up."""
    uid, gid = os.getuid(), os.getgid()
    _check(_libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "dumpable")  # a non-dumpable process cannot map its uid
    _check(_libc.unshare(NEW_NAMESPACES), "unshare(user, pid, ipc, net, mount)")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)
    _check(_libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "non-dumpable")  # this process and the reaper, as the server
    _check(_libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "making / private")
    workdir = spec["workdir"]
    fresh = ((workdir, spec["scratch_mb"], "755"), ("/tmp", spec["tmp_mb"], "1777"), ("/dev/shm", spec["tmp_mb"], "1777"))
    kept = _detach_binds_under([path for path, _, _ in fresh])  # the venv may live under /tmp: it stays seen
    for path, size_mb, mode in fresh:
        _check(_libc.mount(b"tmpfs", path.encode(), b"tmpfs", MS_NOSUID | MS_NODEV,
                           f"size={size_mb * 2**20},mode={mode}".encode()), f"a tmpfs on {path}")
    for point, is_dir, fd in kept:
        if is_dir:
            os.makedirs(point, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(point), exist_ok=True)
            open(point, "a").close()
        _check(_libc.syscall(SYS_MOVE_MOUNT, fd, b"", AT_FDCWD, point.encode(), MOVE_MOUNT_F_EMPTY_PATH),
               f"binding {point} again")
        os.close(fd)
    for hold, dest in spec["binds"]:
        target = Path(workdir) / dest
        target.mkdir(parents=True)
        _check(_libc.mount(hold.encode(), str(target).encode(), None, MS_BIND | MS_REC, None), f"binding {dest}")
        if not os.statvfs(target).f_flag & os.ST_RDONLY:  # the jail's read-only bind stays read-only (locked)
            raise OSError(f"{dest} is writable in the submission's namespace")
    _loopback_up()


def _detach_binds_under(roots: list[str]) -> list[tuple[str, bool, int]]:
    """Detached copies (``open_tree``) of the jail's mounts below ``roots`` (the Python installation, when it lives
    under /tmp), the topmost of each subtree: (mount point, is a folder, descriptor), to bind again on the fresh
    tmpfs. Read-only mounts stay read-only (their flag is locked)."""
    points = []
    with open("/proc/self/mountinfo") as info:
        for line in info:
            point = line.split()[4].encode().decode("unicode_escape")  # octal escapes (\040) of spaces and tabs
            if any(point.startswith(root.rstrip("/") + "/") for root in roots):
                points.append(point)
    topmost = [p for p in dict.fromkeys(points) if not any(p != q and p.startswith(q + "/") for q in points)]
    kept = []
    for point in topmost:
        fd = _libc.syscall(SYS_OPEN_TREE, AT_FDCWD, point.encode(), OPEN_TREE_CLONE | AT_RECURSIVE)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"open_tree({point}): {os.strerror(err)}")
        kept.append((point, os.path.isdir(point), fd))
    return kept


def _loopback_up() -> None:
    """The new network namespace's loopback, up (as the jail's is): a notebook may talk to itself."""
    import fcntl
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack("16sH22x", fcntl.ioctl(s, 0x8913, struct.pack("16sH22x", b"lo", 0)))[1]  # SIOCGIFFLAGS
        fcntl.ioctl(s, 0x8914, struct.pack("16sH22x", b"lo", flags | 1))  # SIOCSIFFLAGS, IFF_UP


def _no_privileges() -> None:
    """No capability (the new user namespace gave all of them), none regained by exec; dumpable, as any process."""
    _check(_libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "dumpable")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    for cap in range(64):
        _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)  # EINVAL past the last capability
    _check(_libc.capset(ctypes.byref(_CapHeader(0x20080522, 0)), (ctypes.c_uint32 * 6)()), "dropping capabilities")


def _exit_code(status: int) -> int:
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _student(spec: dict, result_fd: int, output_fd: int) -> None:
    """The student's process: no privileges, only fds 0-3, in the fresh working directory; the child's main."""
    code = 1
    try:
        _no_privileges()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
        os.dup2(result_fd, RESULT_FD)
        os.closerange(RESULT_FD + 1, os.sysconf("SC_OPEN_MAX"))
        from ..protocol.files import RESULT_FD_ENV
        from . import child

        os.environ[RESULT_FD_ENV] = str(RESULT_FD)
        os.chdir(spec["workdir"])
        sys.argv = [child.__file__]
        if "numpy" in sys.modules:  # Python's random reseeds itself in a forked child; numpy's global one does not
            sys.modules["numpy"].random.seed()
        code = child.main([])
    except BaseException as exc:  # noqa: BLE001 - said on the output, which the runner keeps
        os.write(2, f"deepgrade: the student's process could not start: {exc!r}\n".encode())
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


def _submission(spec: dict, request: str, fds: list[int]) -> None:
    """The submission's first process (forked from the server): its namespaces, its files, then the reaper and
    the student's process. Never returns; exits with the student's exit code (128 + n: killed by signal n)."""
    notebook_fd, result_fd, output_fd = fds
    code = SETUP_FAILED
    try:
        _own_namespaces(spec)
        from ..protocol import files

        workdir = Path(spec["workdir"])
        (workdir / files.REQUEST).write_text(request)
        with open(notebook_fd, "rb") as source, open(workdir / files.NOTEBOOK, "wb") as target:
            while chunk := source.read(1 << 16):
                target.write(chunk)
        reaper = os.fork()  # pid 1 of the new pid namespace: when it ends, the kernel kills all the rest
        if reaper == 0:
            _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "parent-death signal")
            student = os.fork()
            if student == 0:
                _student(spec, result_fd, output_fd)
            for fd in (result_fd, output_fd):
                os.close(fd)
            while True:
                pid, status = os.waitpid(-1, 0)
                if pid == student:
                    os._exit(_exit_code(status))
        for fd in (result_fd, output_fd):
            os.close(fd)
        _, status = os.waitpid(reaper, 0)
        code = _exit_code(status)
    except BaseException as exc:  # noqa: BLE001
        os.write(output_fd, f"deepgrade: the submission's namespaces could not be made: {exc}\n".encode())
    finally:
        os._exit(code)


def _sweep() -> None:
    """Kill every process left in the jail but this one (and bubblewrap's pid 1)."""
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _run(spec: dict, control: socket.socket, request: str, fds: list[int]) -> dict:
    """One submission, from fork to sweep: how it ended (code, seconds, stopped)."""
    start = time.monotonic()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    pid = os.fork()
    if pid == 0:
        control.close()
        _submission(spec, request, fds)
    for fd in fds:
        os.close(fd)
    ended = os.pidfd_open(pid)
    deadline = start + spec["time_limit_s"]
    stopped = None
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                stopped = "time"
                break
            ready = select.select([ended, control], [], [], left)[0]
            if ended in ready:
                break
            if control in ready:
                said, _, _, _ = socket.recv_fds(control, 4096, 0)
                if not said or json.loads(said).get("kill"):
                    stopped = "killed"
                    break
    finally:
        os.close(ended)
        if stopped:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        _sweep()
    return {"code": None if stopped else _exit_code(status), "seconds": round(time.monotonic() - start, 3),
            "stopped": stopped}


def _probe(spec: dict) -> str | None:
    """Whether a submission's namespaces can be made here: None, or why not."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        code = 0
        try:
            _own_namespaces(spec)
        except BaseException as exc:  # noqa: BLE001
            os.write(write, str(exc).encode()[:2000])
            code = 1
        os._exit(code)
    os.close(write)
    with open(read, "rb") as pipe:
        why = pipe.read().decode("utf-8", "replace")
    _, status = os.waitpid(pid, 0)
    return None if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 else (why or f"status {status}")


def _warm() -> None:
    """What every notebook of the course imports, before any notebook is known."""
    import keras  # noqa: F401 - the TensorFlow start
    import nbformat  # noqa: F401

    from . import child

    child.warm_up()


def main(argv: list[str]) -> int:
    from ..protocol import files

    start = time.monotonic()
    if os.getpid() > 2:  # it kills every process it can after each submission: only ever in a pid namespace of its own
        sys.stderr.write("deepgrade.sandbox.forked runs only as the first process of a student jail\n")
        return 2
    spec = json.loads(argv[0])
    why = _probe(spec)  # first: where it fails, the caller starts a jail of its own at once, not after a warm-up
    if why is None:
        _warm()
    _check(_libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "non-dumpable")
    out_fd = int(os.environ.pop(files.RESULT_FD_ENV))

    def send(name: str, data: dict) -> None:
        os.write(out_fd, files.frame(name, json.dumps(data).encode()))

    send(READY, {"seconds": round(time.monotonic() - start, 3), "nested": why is None, "why": why})
    control = socket.socket(fileno=0)
    while True:
        said, fds, _, _ = socket.recv_fds(control, 1 << 20, 3)
        if not said:
            return 0
        message = json.loads(said)
        if "request" not in message or len(fds) != 3 or why is not None:
            for fd in fds:
                os.close(fd)
            continue
        send(DONE, _run(spec, control, message["request"], fds))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
