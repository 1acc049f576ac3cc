"""The warm student jail (deepgrade.sandbox.warm): one jail per process, a fresh fork per submission.

A submission tries to leave something behind for the next one run by the same warm jail: a process, a file in
every place it may write, a SysV shared-memory segment, a changed module, a signal to the jail's server, a
write into the server's memory. The next submission, run by the same server, looks for each and must find
nothing, and the server must still be the same one, alive. A secret in the first notebook must not be in the
second one's memory (the server never holds a notebook's bytes).

Safe if the defence fails: the leftover process is tagged and ends by itself within 60 s (the test kills it by
its tag); files go to the jail's own tmpfs mounts; signals reach only processes of the jail's pid namespace;
the memory write is attempted on /proc/<pid>/mem of the jail's own processes only, with 1 byte at a non-mapped
offset (0) which writes nothing even where it is allowed.
"""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path

import nbformat
import pytest

from conftest import ORPHAN_SOURCE, tagged
from deepgrade.course import load_course
from deepgrade.grader.run import student_jail
from deepgrade.sandbox import isolation, run_notebook
from deepgrade.sandbox import warm as warming

MODEL = """
    import keras
    return keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
"""

LEAVE = ORPHAN_SOURCE + """
import ctypes, os, signal, sys, json
TAG, SECRET = {tag!r}, {secret!r}

def build_model():
    places = [os.getcwd(), os.environ["HOME"], os.environ["TMPDIR"], "/tmp", "/dev/shm",
              os.path.join(os.environ["KERAS_HOME"]), os.path.join(os.environ["HOME"], ".ipython")]
    for place in places:
        try:
            os.makedirs(place, exist_ok=True)
            with open(os.path.join(place, TAG), "w") as f:
                f.write(SECRET)
            print("WROTE", place, flush=True)
        except OSError as exc:
            print("DENIED", place, exc, flush=True)
    libc = ctypes.CDLL(None, use_errno=True)
    shm = libc.shmget(0xDEE9, 4096, 0o1666)
    print("SHM", shm, flush=True)
    import json, keras
    json.LEFT_BEHIND = TAG
    keras.LEFT_BEHIND = TAG
    sys.modules["left_behind_" + TAG.replace("-", "_")] = json
    for pid in [int(p) for p in os.listdir("/proc") if p.isdigit()]:
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            if pid == os.getpid():
                break
            try:
                os.kill(pid, sig)
                print("SIGNALLED", pid, sig, flush=True)
            except OSError as exc:
                print("NOSIGNAL", pid, exc, flush=True)
        try:
            with open(f"/proc/{{pid}}/mem", "r+b", buffering=0) as mem:
                mem.write(b"x")
                print("MEMWRITE", pid, flush=True)
        except OSError as exc:
            print("NOMEM", pid, type(exc).__name__, flush=True)
    for sig in (signal.SIGSTOP, signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(os.getppid(), sig)
        except OSError:
            pass
    orphan(TAG)  # last: the signals above reach every process of its own namespace
""" + MODEL

FIND = """
import ctypes, os, sys, re
TAG, HEAD, TAIL = {tag!r}, {head!r}, {tail!r}

def build_model():
    found = []
    for root in (os.getcwd(), os.environ["HOME"], "/tmp", "/dev/shm"):
        for folder, dirs, names in os.walk(root):
            found += [os.path.join(folder, n) for n in names if n == TAG]
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{{pid}}/cmdline", "rb") as f:
                if TAG.encode() in f.read():
                    found.append(f"process {{pid}}")
        except OSError:
            pass
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.shmget(0xDEE9, 0, 0) >= 0:
        found.append("the SysV segment 0xDEE9")
    import json, keras
    found += [f"{{m.__name__}}.LEFT_BEHIND" for m in (json, keras) if hasattr(m, "LEFT_BEHIND")]
    found += [name for name in sys.modules if name.startswith("left_behind_")]
    with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", buffering=0) as mem:
        for line in maps:
            fields = line.split()
            if not fields[1].startswith("rw") or (len(fields) > 5 and not fields[5].startswith("[heap")):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            step = 1 << 24
            for at in range(start, end, step):  # 16 MB at a time, overlapping by the secret's length
                try:
                    mem.seek(at)
                    block = mem.read(min(step + 64, end - at))
                except (OSError, OverflowError, ValueError):
                    continue
                hit = block.find(HEAD.encode())
                while hit >= 0:
                    if block[hit + len(HEAD):hit + len(HEAD) + len(TAIL)] == TAIL.encode():
                        found.append(f"the first notebook's secret, in memory at {{at + hit:#x}}")
                        break
                    hit = block.find(HEAD.encode(), hit + 1)
    if found:
        raise RuntimeError("LEFT BEHIND: " + "; ".join(found))
""" + MODEL


@pytest.fixture(autouse=True)
def jailed():
    state = isolation()
    if not state.ok:
        pytest.skip(f"no bubblewrap jail on this machine: {state.reason}")


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / f"{name}.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)]), path)
    return path


@pytest.fixture
def server():
    """A warm student jail of its own for the MLP's limits (not the process's shared one)."""
    limits, base, data = student_jail(load_course("."), "mlp")
    started = warming.StudentServer(limits, base, data)
    if not started.ready():
        started.close()
        pytest.skip(f"no warm student jail here: {started.why}")
    yield started
    started.close()


def test_nothing_one_submission_leaves_reaches_the_next(server, tmp_path):
    tag = f"deepgrade-leftover-{uuid.uuid4().hex[:12]}"
    secret = secrets.token_hex(16)
    head, tail = secret[:16], secret[16:]
    pid = server.running.proc.pid
    try:
        left = run_notebook(write(tmp_path, "leave", LEAVE.format(tag=tag, secret=secret)), ["build_model"],
                            tmp_path / "out1", server.limits, data=server.data, warm=server)
        log = left.log
        assert f"SPAWNED {tag}" in log, log[-3000:]
        assert log.count("WROTE") >= 5, log[-3000:]  # the attack ran: it wrote everywhere it could
        assert "MEMWRITE" not in log, log[-3000:]
        assert left.models.get("build_model"), (left.failure, left.errors, log[-3000:])
        found = run_notebook(write(tmp_path, "find", FIND.format(tag=tag, head=head, tail=tail)), ["build_model"],
                             tmp_path / "out2", server.limits, data=server.data, warm=server)
        assert found.failure is None and not found.errors, (found.failure, found.errors, found.log[-3000:])
        assert found.models.get("build_model")
        assert server.ran == 2 and server.running.alive() and server.running.proc.pid == pid
        assert not tagged(tag)  # nothing of it on the host either
    finally:
        for leftover in tagged(tag):
            try:
                import os
                import signal

                os.kill(leftover, signal.SIGKILL)
            except OSError:
                pass


def test_a_submission_over_its_time_is_killed_and_the_next_runs(server, tmp_path):
    import dataclasses

    short = warming.StudentServer(dataclasses.replace(server.limits, time_limit_s=8), None, server.data)
    try:
        assert short.ready(), short.why
        looping = write(tmp_path, "loop", "def build_model():\n    while True:\n        pass\n")
        ran = run_notebook(looping, ["build_model"], tmp_path / "a", short.limits, data=short.data, warm=short)
        assert ran.failure and "time limit of 8 s" in ran.failure
        fine = write(tmp_path, "fine", "def build_model():" + MODEL)
        again = run_notebook(fine, ["build_model"], tmp_path / "b", short.limits, data=short.data, warm=short)
        assert again.models.get("build_model"), (again.failure, again.errors)
        assert short.ran == 2 and short.running.alive()
    finally:
        short.close()


def test_a_lost_server_costs_no_grade(server, tmp_path):
    """The server killed from outside (out of memory, say): the notebook runs in a jail of its own instead."""
    fine = write(tmp_path, "fine", "def build_model():" + MODEL)
    server.running.kill()
    ran = run_notebook(fine, ["build_model"], tmp_path / "out", server.limits, data=server.data, warm=server)
    assert ran.models.get("build_model"), (ran.failure, ran.errors)
    assert ran.isolation == "bubblewrap"


def test_the_server_refuses_to_run_outside_a_jail(tmp_path):
    """It kills every process it can after each submission: only as the first process of a pid namespace."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "deepgrade.sandbox.forked", "{}"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "runs only as the first process of a student jail" in done.stderr


def test_warm_jails_can_be_turned_off(monkeypatch):
    """``DEEPGRADE_WARM_STUDENT=off``: every notebook in a jail of its own (the runner gets no server)."""
    limits, base, data = student_jail(load_course("."), "mlp")
    monkeypatch.setenv(warming.WARM_ENV, "off")
    assert warming.server_for(limits, base, data) is None
