"""Attacks on the student's jail: a hostile notebook run by ``deepgrade.sandbox.run_notebook`` under bubblewrap.

One test per attack class. Each notebook catches its own exceptions and prints what it tried, one line per try
(``WROTE``/``DENIED``, ``READ``/``DENIED``, ...): nothing else comes back from the jail, so the tests assert on
``Submission.log`` and, on the host, on the files, processes and sockets the attack was after. Where the notebook
goes on to define a valid ``build_model()``, the test also asserts its model still came back: an attack that
fails must not cost an honest-looking notebook its grade.

Why each test is safe if the defence fails:

1. writing outside the scratch folder: the notebook only ever creates a *new* file with a unique name (open
   mode "x": nothing existing is overwritten); the folders it aims at are empty temporary folders this test
   makes (mode 0o777) plus the package folder, /root, /var/tmp and /; through /proc/<pid>/cwd it
   writes only where it finds this test's canary file. The test removes any marker it finds, then fails.
2. reading the course and the solution: reading only; nothing is changed.
3. a process that outlives the grade: it sleeps at most 60 s, then exits on its own; the test kills any
   process carrying its unique tag (processes it started itself, by pid) before it ends.
4. process and thread bombs: bounded loops (2,000 at most) stopping at the first refusal; each child sleeps
   5 s and exits, each thread waits at most 5 s.
5. disk bombs: bounded loops (2 GB in the working folder and /tmp, 512 MB in /dev and /dev/shm, 100,000
   files) stopping at the first OSError, all in folders of the jail's own (tmpfs: memory, freed when the jail
   ends), each bomb removing its files before the next.
6. output floods: bounded (200 MB).
7. time-out: an endless loop, but the jail is the only thing that can end it, and bubblewrap dies with
   this process (``--die-with-parent``) if the test is interrupted.
8. network: connections to a server this test runs (it sends nothing) and a bare TCP connect to 1.1.1.1:53
   with a 3 s time-out, sending nothing.
9. the returned-size cap: bytes written to the jail's own result pipe, 100 MB at most.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import socket
import tempfile
import time
import uuid
from pathlib import Path

import nbformat
import pytest

import deepgrade
from conftest import ORPHAN_SOURCE, REPO, tagged
from deepgrade.sandbox import Limits, isolation, run_notebook

MODEL = """
import keras
def build_model():
    return keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                             keras.layers.Dense(10, activation="softmax")])
"""


@pytest.fixture(autouse=True)
def jailed():
    """Every attack here is on the bubblewrap jail: without one there is nothing to attack."""
    state = isolation()
    if not state.ok:
        pytest.skip(f"no bubblewrap jail on this machine: {state.reason}")


def notebook(folder: Path, *sources: str) -> Path:
    path = folder / "attack.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources]), path)
    return path


def run(tmp_path: Path, *sources: str, **limits):
    """Run the notebook made of ``sources`` in the student's jail (60 s unless said otherwise).

    Grading runs only what build_model() needs; an attacker puts the attack where it runs. Each attack cell here
    goes through ``exec``, which may define any name, so grading runs it wherever it stands (a cell build_model()
    needs runs the same way: test_a_hostile_statement_build_model_needs_is_held). Every test asserts the lines
    its attack prints, so an attack that did not run fails its test."""
    limits.setdefault("time_limit_s", 60)
    cells = [source if source == MODEL else f"exec({source!r})" for source in sources]
    return run_notebook(notebook(tmp_path, *cells), ["build_model"], tmp_path / "out",
                        Limits.of("student", **limits))


def said(log: str, word: str) -> list[str]:
    """The lines of the log that start with ``word``, without it."""
    return [line[len(word) + 1:] for line in log.splitlines() if line.startswith(word + " ")]


def built(submission) -> None:
    """The notebook's own build_model() came back as a model file, whatever the attack did."""
    assert submission.failure is None, submission.failure + "\n" + submission.log[-3000:]
    assert submission.isolation == "bubblewrap"
    assert "build_model" in submission.models and submission.models["build_model"].is_file(), submission.errors


def host_pids() -> list[str]:
    return [p for p in os.listdir("/proc") if p.isdigit()]


@pytest.fixture
def open_dirs():
    """Empty folders anyone may write to (mode 0o777) in /tmp, /var/tmp and /dev/shm: only the jail can stop a
    write there. Removed afterwards."""
    made = []
    for parent in ("/tmp", "/var/tmp", "/dev/shm"):
        if os.path.isdir(parent):
            folder = Path(tempfile.mkdtemp(prefix="deepgrade-attack-", dir=parent))
            folder.chmod(0o777)
            made.append(folder)
    yield made
    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)


# -- 1. writing outside the scratch folder ------------------------------------------------------------------

WRITE_OUT = """
import errno, os
MARK, CANARY, DIRS = {mark!r}, {canary!r}, {dirs!r}

def attempt(path):
    try:
        with open(path, "x") as f:
            f.write("escaped")
        print("WROTE", path, flush=True)
    except OSError as exc:
        print("DENIED", path, errno.errorcode.get(exc.errno, exc.errno), flush=True)

import deepgrade
for folder in [*DIRS, os.path.dirname(deepgrade.__file__), "/root", "/var/tmp", "/", "/tmp/.."]:
    attempt(os.path.join(folder, MARK))
pids = sorted(p for p in os.listdir("/proc") if p.isdigit())
parents = set()
for pid in pids:
    try:
        with open(f"/proc/{{pid}}/stat") as f:
            parents.add(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError):
        pass
print("PIDS", " ".join(pids), "| PARENTS", " ".join(sorted(parents)), flush=True)
for pid in sorted(set(pids) | parents - {{"0"}}):
    cwd = f"/proc/{{pid}}/cwd"
    try:
        print("CWD", pid, os.readlink(cwd), flush=True)
    except OSError as exc:
        print("CWD", pid, "unreadable", errno.errorcode.get(exc.errno, exc.errno), flush=True)
    if os.path.exists(os.path.join(cwd, CANARY)):  # one of this test's host folders: the jail let it through
        attempt(os.path.join(cwd, MARK))
    else:
        print("NOCANARY", cwd, flush=True)
    for folder in DIRS:
        attempt(f"/proc/{{pid}}/root{{folder}}/{{MARK}}")
"""


def test_write_outside_scratch_is_denied(tmp_path, open_dirs, monkeypatch):
    mark, canary = f"deepgrade-attack-{uuid.uuid4().hex}", f"deepgrade-canary-{uuid.uuid4().hex}"
    for folder in open_dirs:
        (folder / canary).write_text("")
    monkeypatch.chdir(open_dirs[0])  # the launcher and bubblewrap start here: their /proc/<pid>/cwd is a canary folder
    package = Path(deepgrade.__file__).parent
    places = [*open_dirs, package, Path("/root"), Path("/var/tmp"), Path("/dev/shm"), Path("/"), REPO]
    try:
        sub = run(tmp_path, WRITE_OUT.format(mark=mark, canary=canary, dirs=[str(d) for d in open_dirs]), MODEL)
        escaped = [str(p / mark) for p in places if (p / mark).exists()]
        escaped += [f"/proc/{pid}/cwd/{mark}" for pid in host_pids() if os.path.exists(f"/proc/{pid}/cwd/{mark}")]
    finally:
        for path in [*(p / mark for p in places), *(Path(f"/proc/{pid}/cwd") / mark for pid in host_pids())]:
            try:
                path.unlink()
            except OSError:
                pass
    assert not escaped, f"the notebook wrote outside its jail: {escaped}"
    assert not said(sub.log, "WROTE"), sub.log
    denied = said(sub.log, "DENIED")
    assert len(denied) >= len(open_dirs) + 5, sub.log  # every absolute path was tried
    cwds = said(sub.log, "CWD")
    assert cwds, sub.log
    assert all(line.split()[1] in ("/home/student", "/", "unreadable") for line in cwds), cwds  # only the jail's own
    built(sub)


NEEDED_ATTACK = """
import keras, os
MARK, DIRS = {mark!r}, {dirs!r}

def attempt(where):
    for folder in [*DIRS, os.path.dirname(keras.__file__), "/root"]:
        path = os.path.join(folder, MARK + "-" + where)
        try:
            with open(path, "x") as f:
                f.write("escaped")
            print("WROTE", path, flush=True)
        except OSError:
            print("DENIED", where, folder, flush=True)
    return 10

def hostile(fn):  # a decorator: runs when build_model is defined
    attempt("decorator")
    return fn

@hostile
def build_model(units=attempt("default")):  # a default argument: runs when build_model is defined
    return keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                             keras.layers.Dense(units, activation="softmax")])
"""


def test_a_hostile_statement_build_model_needs_is_held(tmp_path, open_dirs):
    """Grading runs what build_model() needs: here a decorator and a default argument that run when it is
    defined, each trying to write outside the jail. They run (the log says so), in the jail, and are held."""
    mark = f"deepgrade-attack-{uuid.uuid4().hex}"
    source = NEEDED_ATTACK.format(mark=mark, dirs=[str(d) for d in open_dirs])
    sub = run_notebook(notebook(tmp_path, source), ["build_model"], tmp_path / "out",
                       Limits.of("student", time_limit_s=60))
    places = [*open_dirs, Path(os.path.dirname(deepgrade.__file__)).parent, Path("/root")]
    escaped = [p for where in ("decorator", "default") for p in places if (p / f"{mark}-{where}").exists()]
    for path in escaped:
        path.unlink()
    assert not escaped, f"the needed statement wrote outside the jail: {escaped}"
    assert not said(sub.log, "WROTE"), sub.log
    denied = said(sub.log, "DENIED")
    assert {line.split()[0] for line in denied} == {"decorator", "default"}, sub.log
    built(sub)


# -- 2. reading the course, the data or a solution ------------------------------------------------------------

READ = """
import errno, os
PATHS = {paths!r}
pids = [p for p in os.listdir("/proc") if p.isdigit()]
for path in PATHS + [f"/proc/{{pid}}/root{{p}}" for pid in pids for p in PATHS[:3]]:
    try:
        with open(os.path.expanduser(path), "rb") as f:
            f.read(1)
        print("READ", path, flush=True)
    except OSError as exc:
        print("DENIED", path, errno.errorcode.get(exc.errno, exc.errno), flush=True)
for folder in ("/usr/share/datasets", os.path.expanduser("~/.keras"), "/root/.keras", {repo!r} + "/solutions"):
    try:
        print("LISTED", folder, sorted(os.listdir(folder)), flush=True)
    except OSError as exc:
        print("UNLISTED", folder, errno.errorcode.get(exc.errno, exc.errno), flush=True)
"""


def secret_paths() -> list[str]:
    from deepgrade.grader import data

    fashion = sorted(p.name for p in Path("/root/.keras/datasets/fashion-mnist").glob("*.gz")) or [
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz"]
    paths = [str(REPO / "solutions/mlp/mlp.ipynb"), str(REPO / "course.yml"), str(REPO / "autograders/test_mlp.py"),
             str(REPO / "tests/submissions/mlp/correct.py"), str(REPO / "nbgrader_config.py")]
    for folder in ("/usr/share/datasets/fashion-mnist", "~/.keras/datasets/fashion-mnist",
                   "/root/.keras/datasets/fashion-mnist", str(data.cache_dir())):
        paths += [f"{folder}/{name}" for name in fashion]
    return list(dict.fromkeys(paths))


def test_read_course_data_or_solution_is_denied(tmp_path):
    paths = secret_paths()
    sub = run(tmp_path, READ.format(paths=paths, repo=str(REPO)), MODEL)
    assert not said(sub.log, "READ"), sub.log
    assert not said(sub.log, "LISTED"), sub.log
    assert len(said(sub.log, "DENIED")) >= len(paths), sub.log
    built(sub)


STEAL = """
import json, os
import keras
from keras import layers
found = []
for root, dirs, names in os.walk("/"):  # everything the jail shows, bounded
    dirs[:] = [d for d in dirs if os.path.join(root, d) not in ("/proc", "/sys", "/dev")]
    found += [os.path.join(root, n) for n in names if n in ("mlp.ipynb", "course.yml", "test_mlp.py", "correct.py")]
    if len(found) > 20:
        break
print("FOUND", found, flush=True)
for path in [{solution!r}, *found]:
    try:
        nb = json.load(open(path))
    except (OSError, ValueError):
        continue
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and "def build_model" in source:
            exec(source)
            print("STOLE", path, flush=True)
"""


def test_read_notebook_without_code_of_its_own_gets_no_model(tmp_path):
    """A notebook that defines nothing itself and runs the solution's build_model, if it can find it."""
    sub = run(tmp_path, STEAL.format(solution=str(REPO / "solutions/mlp/mlp.ipynb")))
    assert "FOUND []" in sub.log, sub.log
    assert not said(sub.log, "STOLE"), sub.log
    assert "build_model" not in sub.models
    assert "does not define a function `build_model()`" in (sub.errors.get("build_model") or sub.failure or ""), sub


# -- 3. a process that outlives the grade ---------------------------------------------------------------------

ORPHAN = ORPHAN_SOURCE + """
orphan({tag!r} + "-cell")
import keras
def build_model():
    orphan({tag!r} + "-build")  # the last thing the jail runs
    return keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                             keras.layers.Dense(10, activation="softmax")])
"""


def test_orphan_process_does_not_outlive_the_grade(tmp_path):
    tag = f"deepgrade-attack-{uuid.uuid4().hex}"
    try:
        sub = run(tmp_path, ORPHAN.format(tag=tag))
        deadline = time.monotonic() + 5
        while tagged(tag) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = tagged(tag)
    finally:
        for pid in tagged(tag):  # started by this test's notebook: ended here if the jail did not
            try:
                os.kill(pid, 9)
            except OSError:
                pass
    assert said(sub.log, "SPAWNED") == [f"{tag}-cell", f"{tag}-build"], sub.log
    assert not left, f"processes of the notebook outlived the grade: {left}"
    assert sub.seconds < 45, sub.seconds  # the grade did not wait for the orphans' 60 s
    built(sub)


def test_orphan_tag_is_found_on_the_host():
    """The check above is not vacuous: a process with the tag in its argv is found through /proc."""
    import subprocess
    import sys

    tag = f"deepgrade-attack-{uuid.uuid4().hex}"
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", tag])
    try:
        deadline = time.monotonic() + 5
        while not tagged(tag) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert tagged(tag) == [proc.pid]
    finally:
        proc.kill()
        proc.wait()


# -- 4. process and thread bombs ----------------------------------------------------------------------------

BOMB = """
import errno, os, threading, time
children = []
for _ in range(2000):
    try:
        pid = os.fork()
    except OSError as exc:
        print("FORK-REFUSED", errno.errorcode.get(exc.errno, exc.errno), flush=True)
        break
    if pid == 0:
        try:
            time.sleep(5)
        finally:
            os._exit(0)
    children.append(pid)
print("FORKED", len(children), flush=True)
for pid in children:
    os.waitpid(pid, 0)

threads, stop = [], threading.Event()
for _ in range(2000):
    thread = threading.Thread(target=stop.wait, args=(5,))
    try:
        thread.start()
    except RuntimeError as exc:
        print("THREAD-REFUSED", exc, flush=True)
        break
    threads.append(thread)
print("THREADS", len(threads), flush=True)
stop.set()
for thread in threads:
    thread.join()
"""


def test_bomb_processes_and_threads_stop_at_the_limit(tmp_path):
    start = time.monotonic()
    sub = run(tmp_path, BOMB, MODEL, processes=64, time_limit_s=60)
    assert time.monotonic() - start < 90
    forked, threads = said(sub.log, "FORKED"), said(sub.log, "THREADS")
    assert forked and threads, sub.log
    assert 0 < int(forked[0]) < 64, sub.log
    assert 0 < int(threads[0]) < 64, sub.log
    assert said(sub.log, "FORK-REFUSED") == ["EAGAIN"], sub.log
    assert said(sub.log, "THREAD-REFUSED"), sub.log
    built(sub)


# -- 5. disk bombs ------------------------------------------------------------------------------------------

DISK = """
import errno, os, shutil
CHUNK = b"\\0" * (16 * 2**20)

def bomb(label, folder, one_file, chunks=128):  # 128 chunks: 2 GB at most
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        print("DISK", label, 0, errno.errorcode.get(exc.errno, exc.errno), flush=True)
        return
    why = "none"
    try:
        if one_file:
            with open(os.path.join(folder, "big.bin"), "wb", buffering=0) as f:
                for _ in range(chunks):
                    f.write(CHUNK)
        else:
            for i in range(chunks):
                with open(os.path.join(folder, f"chunk{i}.bin"), "wb", buffering=0) as f:
                    f.write(CHUNK)
    except OSError as exc:
        why = errno.errorcode.get(exc.errno, exc.errno)
    size = sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder))
    print("DISK", label, size, why, flush=True)
    shutil.rmtree(folder)

def many(label, folder):
    os.makedirs(folder, exist_ok=True)
    count, why = 0, "none"
    try:
        for i in range(100_000):
            with open(os.path.join(folder, str(i)), "w") as f:
                f.write("x")
            count += 1
    except OSError as exc:
        why = errno.errorcode.get(exc.errno, exc.errno)
    print("FILES", label, count, why, flush=True)
    shutil.rmtree(folder)

bomb("scratch-one", "bomb", True)
bomb("scratch-many", "bomb", False)
bomb("tmp-one", "/tmp/bomb", True)
bomb("tmp-many", "/tmp/bomb", False)
bomb("dev-many", "/dev/bomb", False, chunks=32)  # /dev and /dev/shm are tmpfs too: 512 MB at most each
bomb("shm-many", "/dev/shm/bomb", False, chunks=32)
many("scratch", "small")
many("tmp", "/tmp/small")
"""


def test_disk_bombs_stop_at_the_limits(tmp_path):
    sub = run(tmp_path, DISK, MODEL, scratch_mb=64, tmp_mb=64, file_mb=32)
    sizes = {line.split()[0]: (int(line.split()[1]), line.split()[2]) for line in said(sub.log, "DISK")}
    assert set(sizes) == {"scratch-one", "scratch-many", "tmp-one", "tmp-many", "dev-many", "shm-many"}, sub.log
    over = {label: size for label, (size, why) in sizes.items() if size >= 100 * 2**20}
    assert not over, (f"writable space beyond scratch_mb/tmp_mb (the test's own bound stopped these, not the "
                      f"jail): {over}\n{sub.log[:2000]}")
    for label, (_size, why) in sizes.items():
        assert why in ("EFBIG", "ENOSPC", "EACCES", "EROFS"), (label, why)
    assert sizes["scratch-one"][1] == sizes["tmp-one"][1] == "EFBIG"  # one file: RLIMIT_FSIZE, 32 MB
    assert sizes["scratch-one"][0] <= 32 * 2**20
    assert sizes["scratch-many"][1] == sizes["tmp-many"][1] == "ENOSPC"  # the tmpfs is full at 64 MB
    files = {line.split()[0]: (int(line.split()[1]), line.split()[2]) for line in said(sub.log, "FILES")}
    assert set(files) == {"scratch", "tmp"}, sub.log
    for label, (count, why) in files.items():
        assert 0 < count < 100_000 and why == "ENOSPC", (label, count, why)
    built(sub)  # the bombs cleaned up after themselves, so the model could be saved


# -- 6. output floods ---------------------------------------------------------------------------------------

FLOOD = """
import sys
line = "x" * (2**20 - 1)
for _ in range(200):  # 200 MB
    print(line)
print("FLOOD-DONE", flush=True)
"""


def test_output_flood_is_cut_and_the_model_still_comes_back(tmp_path):
    start = time.monotonic()
    sub = run(tmp_path, FLOOD, MODEL, output_kb=64, time_limit_s=60)
    took = time.monotonic() - start
    assert took < 60, took
    assert len(sub.log) < 64 * 1024 + 500, len(sub.log)
    dropped = re.search(r"\[\.\.\. ([\d,]+) more bytes of output dropped: the sandbox keeps 64 KB\]", sub.log)
    assert dropped, sub.log[-500:]
    assert int(dropped[1].replace(",", "")) > 190 * 2**20
    built(sub)


# -- 7. time-out --------------------------------------------------------------------------------------------

def test_timeout_endless_loop_is_stopped(tmp_path):
    start = time.monotonic()
    sub = run(tmp_path, "while True:\n    pass", MODEL, time_limit_s=5)
    took = time.monotonic() - start
    assert took < 15, took
    assert sub.failure and "did not finish within the time limit of 5 s" in sub.failure, sub.failure
    assert not sub.models


# -- 8. network ---------------------------------------------------------------------------------------------

NETWORK = """
import errno, socket
for target in {targets!r}:
    try:
        socket.create_connection(tuple(target), timeout=3).close()
        print("CONNECTED", target, flush=True)
    except OSError as exc:
        print("BLOCKED", target, errno.errorcode.get(exc.errno, exc), flush=True)
try:
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.settimeout(3)
    unix.connect({abstract!r})
    print("CONNECTED abstract", flush=True)
except OSError as exc:
    print("BLOCKED abstract", errno.errorcode.get(exc.errno, exc), flush=True)
"""


def host_address() -> str | None:
    """An address of this host other than loopback (the route out), or None."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # no packet is sent for a UDP connect
            address = probe.getsockname()[0]
        return None if address.startswith("127.") else address
    except OSError:
        return None


def test_network_connections_are_refused(tmp_path):
    server = socket.socket()
    server.bind(("0.0.0.0", 0))
    server.listen()
    server.setblocking(False)
    port = server.getsockname()[1]
    abstract = f"\0deepgrade-attack-{uuid.uuid4().hex}"  # abstract unix sockets belong to the network namespace
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(abstract)
    unix.listen()
    unix.setblocking(False)
    targets = [["127.0.0.1", port], ["1.1.1.1", 53]] + ([[host_address(), port]] if host_address() else [])
    try:
        sub = run(tmp_path, NETWORK.format(targets=targets, abstract=abstract), MODEL)
        waiting, _, _ = select.select([server, unix], [], [], 0)
    finally:
        server.close()
        unix.close()
    assert not waiting, "a connection from the jail reached the test's server"
    assert not said(sub.log, "CONNECTED"), sub.log
    assert len(said(sub.log, "BLOCKED")) == len(targets) + 1, sub.log
    built(sub)


# -- 9. the returned-size cap -------------------------------------------------------------------------------

RETURN_FLOOD = """
import os
with open(int(os.environ["DEEPGRADE_RESULT_FD"]), "wb", closefd=False) as pipe:
    for _ in range(100):  # 100 MB
        pipe.write(b"\\0" * 2**20)
print("RETURN-FLOOD-DONE", flush=True)
"""


def test_return_flood_fails_the_submission_at_the_cap(tmp_path):
    start = time.monotonic()
    sub = run(tmp_path, MODEL, RETURN_FLOOD, return_mb=16, time_limit_s=60)
    assert time.monotonic() - start < 45  # stopped at the cap, not at the time limit
    assert sub.failure and "16 MB" in sub.failure, sub.failure
    assert "RETURN-FLOOD-DONE" not in sub.log
    assert not sub.models
