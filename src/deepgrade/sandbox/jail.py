"""A bubblewrap jail: one command run as an unprivileged user in its own namespaces, seeing only what is bound.

:func:`command` turns a :class:`Jail` (what to run, what it sees, its :class:`~.policy.Limits`) into the
bubblewrap command; :func:`run` runs it and returns a :class:`Ran` (:mod:`.running` keeps one up to talk to).
The jail gets

- its own user, pid, ipc, uts, net, mount and cgroup namespaces (``--unshare-all``), uid/gid 65534 inside,
  and, when started by root, a host uid of its own (so RLIMIT_NPROC holds: root is exempt);
- read-only: the system libraries, the Python installation, the virtual environment and an editable
  install's ``src/`` (what Python and Keras need), and the :class:`Mount` s it names; nothing else of the
  host: no home, no course, no Keras cache unless bound;
- a size-capped tmpfs working directory and ``/tmp``; no network (only its own loopback);
- stdout and stderr captured up to a cap, and one pipe (fd ``$DEEPGRADE_RESULT_FD``) for what it returns,
  read up to a cap: nothing else comes back;
- the whole process tree killed with it: the pid namespace ends when bubblewrap does
  (``--die-with-parent``), ``setsid()`` or not.

:func:`isolation` says whether such a jail can be made here, and why not.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from ..protocol.files import RESULT_FD_ENV
from .policy import Limits

BWRAP_ENV = "DEEPGRADE_BWRAP"    # the bubblewrap to use; "off" turns isolation off (to test the fallback)
JAIL_UID = 65534                 # the uid inside the jail (nobody)
HOST_UIDS = (3_000_000, 1_000_000)  # a root-started jail runs as a host uid from this range (start, count)
SYSTEM = ("/usr/bin", "/usr/lib", "/usr/lib64", "/usr/libexec", "/usr/share/zoneinfo")
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/localtime", "/etc/nsswitch.conf")
TOP_LINKS = ("/bin", "/lib", "/lib64", "/sbin")
GPU_DEVICES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", *(f"/dev/nvidia{i}" for i in range(8)))


@dataclass(frozen=True)
class Mount:
    """``source`` on the host, seen at ``dest`` in the jail; read-only unless ``writable``."""

    source: Path
    dest: str
    writable: bool = False


@dataclass(frozen=True)
class Jail:
    argv: list[str]
    cwd: str
    env: dict[str, str]
    limits: Limits
    mounts: list[Mount] = field(default_factory=list)
    gpu: bool = False


@dataclass(frozen=True)
class Ran:
    """What came back from a jail: its exit, its captured output and the bytes it returned on the result pipe."""

    code: int | None               # None: killed by the parent (time-out, over the return cap)
    seconds: float
    output: str                    # ends with a line saying how much was dropped over the cap, if any
    returned: bytes
    stopped: Literal["time", "returned"] | None = None  # why the parent killed it


@dataclass(frozen=True)
class Isolation:
    ok: bool
    reason: str = ""               # why no jail can be made here

    @property
    def label(self) -> str:
        """How a grade was isolated, as recorded in its report."""
        return "bubblewrap" if self.ok else f"none ({self.reason})"


def why_not_isolated(label: str) -> str:
    """'none (why)' -> 'why', for the line a grade shows when it was not isolated."""
    return label.removeprefix("none (").removesuffix(")")


def bwrap_path() -> str | None:
    chosen = os.environ.get(BWRAP_ENV, "").strip()
    if chosen == "off":
        return None
    return chosen or shutil.which("bwrap")


def isolation() -> Isolation:
    """Whether a bubblewrap jail can be made here (checked once per bubblewrap), and why not."""
    chosen = os.environ.get(BWRAP_ENV, "").strip()
    if chosen == "off":
        return Isolation(False, f"turned off by {BWRAP_ENV}=off")
    return _probe(bwrap_path())


@functools.cache
def _probe(bwrap: str | None) -> Isolation:
    if bwrap is None or not Path(bwrap).is_file():
        return Isolation(False, "bubblewrap is not installed: apt-get install bubblewrap (make setup does)")
    probe = Jail(argv=["/usr/bin/true"], cwd="/", env={}, limits=Limits.of("student", time_limit_s=30))
    try:
        ran = run(probe, python=False)
    except OSError as exc:
        return Isolation(False, f"bubblewrap could not start ({exc})")
    if ran.code != 0:
        said = ran.output.strip().splitlines()[-1:] or [f"exit code {ran.code}"]
        return Isolation(False, f"bubblewrap cannot create namespaces here ({said[0]}); on Debian as a "
                                "non-root user, unprivileged user namespaces must be allowed")
    return Isolation(True)


def python_mounts() -> list[Mount]:
    """What Python and deepgrade need, read-only at their own paths: the installation, the venv, ``src/``."""
    import deepgrade

    paths = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), Path(sys.executable).resolve().parent}
    package = Path(deepgrade.__file__).resolve().parent.parent  # src/ of an editable install, or site-packages
    if not any(package.is_relative_to(p) for p in paths):
        paths.add(package)
    # A system Python (base prefix /usr) is covered by the system binds: binding /usr whole would show the jail
    # /usr/share (data sets among it).
    paths = {p for p in paths if p not in (Path("/"), Path("/usr")) and not str(p).startswith(SYSTEM)}
    chosen = sorted(p for p in paths if not any(p != q and p.is_relative_to(q) for q in paths))
    return [Mount(p, str(p)) for p in chosen]


def _hide_bundle() -> list[str]:
    """The course packaged with deepgrade (course.yml, autograders) sits inside the package the jail binds: an
    empty read-only tmpfs over it, before the jail's own mounts (the grader's jail binds it back as its course)."""
    from ..course.bundle import BUNDLE_DIR

    if not BUNDLE_DIR.is_dir():
        return []
    return ["--size", str(2**20), "--tmpfs", str(BUNDLE_DIR), "--remount-ro", str(BUNDLE_DIR)]


def command(jail: Jail, stage: Path | None, *, python: bool = True) -> tuple[list[str], list[list[str]]]:
    """bubblewrap's arguments for ``jail``, and the (source, staging path) pairs the launcher binds first.

    With ``stage`` (a root start), every mount's source is bound onto a path under ``stage`` that the jail's
    unprivileged host uid can reach, and bubblewrap binds it from there.
    """
    limits = jail.limits
    args = ["--unshare-all", "--die-with-parent", "--new-session", "--uid", str(JAIL_UID), "--gid", str(JAIL_UID),
            "--hostname", "sandbox", "--cap-drop", "ALL"]
    for path in SYSTEM:
        args += ["--ro-bind-try", path, path]
    for path in SYSTEM_FILES:
        args += ["--ro-bind-try", path, path]
    for top in TOP_LINKS:
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    args += ["--proc", "/proc", "--dev", "/dev"]
    if jail.gpu:
        for device in GPU_DEVICES:
            args += ["--dev-bind-try", device, device]
    args += ["--size", str(limits.tmp_mb * 2**20), "--tmpfs", "/tmp",
             "--size", str(limits.tmp_mb * 2**20), "--tmpfs", "/dev/shm"]
    if jail.cwd not in ("/", "/tmp"):
        args += ["--size", str(limits.scratch_mb * 2**20), "--tmpfs", jail.cwd]
    pairs: list[list[str]] = []
    own = python_mounts() if python else []
    for i, mount in enumerate([*own, *jail.mounts, None]):
        if i == len(own) and python:
            args += _hide_bundle()
        if mount is None:
            break
        source = str(mount.source)
        if stage is not None:
            target = stage / str(i)
            if mount.source.is_dir():
                target.mkdir()
            else:
                target.touch()
            pairs.append([source, str(target)])
            source = str(target)
        args += ["--bind" if mount.writable else "--ro-bind", source, mount.dest]
    # The root and /dev (bubblewrap's tmpfs, uncapped) read-only; the capped tmpfs mounts stay writable.
    args += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", jail.cwd, "--clearenv"]
    for key, value in jail.env.items():
        args += ["--setenv", key, value]
    return [*args, "--", *jail.argv], pairs


def rlimits(limits: Limits, extra_processes: int = 0) -> dict[str, int]:
    """The resource limits of a jail, by the names of :data:`.launch.RLIMITS` (the launcher sets them)."""
    infinity = resource.RLIM_INFINITY
    return {
        "as": limits.memory_limit_mb * 2**20 if limits.memory_limit_mb else infinity,
        "cpu": int(limits.cpu_time_s),
        "nproc": limits.processes + extra_processes,
        "fsize": limits.file_mb * 2**20,
        "nofile": limits.open_files,
        "core": 0,
    }


def limits_outside(limits: Limits):
    """The ``preexec_fn`` that gives a plain (unjailed) subprocess the jail's resource limits, but RLIMIT_NPROC:
    without a uid of its own, it would count the grader's own processes."""
    from .launch import RLIMITS

    values = {name: value for name, value in rlimits(limits).items() if name != "nproc"}

    def apply() -> None:
        for name, value in values.items():
            resource.setrlimit(RLIMITS[name], (value, value))

    return apply


def has_gpu_devices() -> bool:
    """Whether this machine has NVIDIA device nodes (a jail would bind them)."""
    return any(Path(device).exists() for device in GPU_DEVICES)


def _own_processes(uid: int) -> int:
    """How many processes ``uid`` runs now (a non-root jail's RLIMIT_NPROC counts them too)."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid == uid
            except OSError:
                pass
    return count


def run(jail: Jail, *, python: bool = True) -> Ran:
    """Run ``jail`` to its end or its limits; never raises for what happens inside. OSError if it cannot start."""
    with launched(jail, python=python, stdin=False) as (proc, result_fd, start):
        return _collect(proc, result_fd, jail.limits, start)


@contextlib.contextmanager
def launched(jail: Jail, *, python: bool, stdin: bool, control: int | None = None):
    """Start ``jail`` (bubblewrap through :mod:`.launch`); yield the process, the read end of its result pipe
    and its start time. ``stdin``: a pipe to write to (else /dev/null); ``control``: this descriptor (a socket
    that can carry descriptors) as its stdin instead. The staging folder lives as long as the context. OSError
    if it cannot start."""
    bwrap = bwrap_path()
    if bwrap is None:
        raise OSError("bubblewrap is not available")
    root = os.geteuid() == 0
    result_read, result_write = os.pipe()
    jail = replace(jail, env={**jail.env, RESULT_FD_ENV: str(result_write)})
    try:
        with tempfile.TemporaryDirectory(prefix="deepgrade-jail-") as tmp:
            folder = Path(tmp)
            os.chmod(folder, 0o755)
            stage = folder / "stage"
            stage.mkdir()
            args, pairs = command(jail, stage if root else None, python=python)
            uid = HOST_UIDS[0] + secrets.randbelow(HOST_UIDS[1]) if root else None
            extra = 0 if root else _own_processes(os.getuid())
            plan = folder / "plan.json"
            plan.write_text(json.dumps({"bwrap": bwrap, "args": args, "stage": pairs, "uid": uid,
                                        "rlimits": rlimits(jail.limits, extra)}))
            start = time.monotonic()
            proc = subprocess.Popen(
                [sys.executable, "-I", str(Path(__file__).with_name("launch.py")), str(plan)],
                stdin=control if control is not None else subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, start_new_session=True, pass_fds=(result_write,),
                env={"PATH": "/usr/bin:/bin"},
            )
            os.close(result_write)
            result_write = -1
            try:
                yield proc, result_read, start
            finally:
                result_read = -1  # the reader owns it now
                kill_group(proc)
    except BaseException:
        for fd in (result_read, result_write):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        raise


def kill_group(proc: subprocess.Popen) -> None:
    if proc.returncode is not None:  # reaped: its pid (and group id) may belong to another process by now
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def own_stdout(proc: subprocess.Popen) -> int:
    """The process's stdout as a descriptor of the reader's own (which closes it): the Popen object's file
    is closed now, so it can never close a reused descriptor number later."""
    fd = os.dup(proc.stdout.fileno())
    proc.stdout.close()
    return fd


class PipeReader(threading.Thread):
    """Reads a pipe to its end, keeping at most ``keep`` bytes; ``over()`` is called once when it has more. With
    ``stop``, it then stops reading (and closes the pipe): the writer is held there until it is killed."""

    def __init__(self, fd: int, keep: int, over=None, *, tail: bool = False, stop: bool = False):
        super().__init__(daemon=True)
        self.fd, self.keep, self.over, self.tail, self.stop = fd, keep, over, tail, stop
        self.data, self.dropped = bytearray(), 0

    def run(self) -> None:
        with open(self.fd, "rb", buffering=0, closefd=True) as pipe:
            while chunk := pipe.read(1 << 16):
                if self.tail:  # keep the last bytes (a long-lived jail's latest output)
                    self.data += chunk
                    del self.data[:max(0, len(self.data) - self.keep)]
                    continue
                room = self.keep - len(self.data)
                if room > 0:
                    self.data += chunk[:room]
                if len(chunk) > room:
                    self.dropped += len(chunk) - max(room, 0)
                    if self.over is not None:
                        self.over()
                        self.over = None
                    if self.stop:
                        break


def output_text(output: PipeReader, limits: Limits) -> str:
    """What a jail printed, as text, with a last line saying how much was dropped over the cap."""
    text = bytes(output.data).decode("utf-8", "replace")
    if output.dropped:
        text += f"\n[... {output.dropped:,} more bytes of output dropped: the sandbox keeps {limits.output_kb} KB]"
    return text


def _collect(proc: subprocess.Popen, result_fd: int, limits: Limits, start: float) -> Ran:
    stopped: list[str] = []

    def kill(reason: str | None = None) -> None:
        if reason and not stopped:
            stopped.append(reason)
        kill_group(proc)

    output = PipeReader(own_stdout(proc), limits.output_kb * 1024)
    returned = PipeReader(result_fd, limits.return_mb * 2**20, over=lambda: kill("returned"))
    output.start()
    returned.start()
    try:
        code = proc.wait(timeout=limits.time_limit_s)
    except subprocess.TimeoutExpired:
        kill("time")
        code = proc.wait()
    kill()  # the jail's pid namespace ends with bubblewrap: nothing it started outlives the grade
    output.join(10)
    returned.join(10)
    seconds = time.monotonic() - start
    text = output_text(output, limits)
    reason = stopped[0] if stopped else None
    return Ran(code=None if reason else code, seconds=seconds, output=text,
               returned=bytes(returned.data) if reason != "returned" else b"", stopped=reason)
