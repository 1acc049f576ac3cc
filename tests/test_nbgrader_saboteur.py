"""A saboteur in an nbgrader class: ``nbgrader autograde`` for real, on a class of three for the ``mlp`` exercise.

alice and zoe hand in the reference answer (solutions/mlp/mlp.ipynb's build_model cell in the released stub);
mallory, graded between them, hands in a valid model too, but her build_model cell carries a decorator (code
the grader runs, since build_model() needs it) that first tries to

(a) truncate gradebook.db, looked for by walking up from her working folder, in /proc/<pid>/cwd and
    /proc/<pid>/root<course> of every process she can see, and at the course folder's absolute path;
(b) rewrite every other student's submitted/*/mlp/*.ipynb into a notebook whose build_model() raises;
(c) leave a detached (setsid, double fork) process behind, tagged in its argv.

The test asserts the gradebook is intact and holds all three, alice and zoe get the full 5 points on their own
work, their submitted files are byte-identical after the grade, no tagged process outlived it, and no marker of
mallory's exists. The class folder (and every file in it) is made writable by anyone, so only the jail stands
between mallory and it.

Why this is safe if the defence fails: mallory acts only on a folder that holds this test's canary file (the
class folder, a fresh temporary folder, removed afterwards), so whatever she can reach, she can only damage this
test's own copy, which is what the test then checks; her process sleeps 60 s at most and is killed by the test
(by pid, found by its unique tag).

A control shows mallory's code is no dud: run by deepgrade.sandbox.run_notebook with no jail
(DEEPGRADE_BWRAP=off) from a folder laid out like a class, it does truncate the gradebook, rewrite the other
notebook and leave its process behind (in that folder of its own only, as above; the process is killed by pid).

A last test: with DEEPGRADE_BWRAP=off in autograde's environment (no jail can be made), nbgrader grades
nobody's work (every test cell says why, 0 points) unless the instructor opts out with
--TrustedGrade.allow_unisolated=True; then the grade says it was not isolated. Its student is honest.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import nbformat
import pytest

from conftest import ORPHAN_SOURCE, REPO, tagged
from deepgrade.course import fill
from deepgrade.demo import gradebook, nbgrader_config, tool_env
from deepgrade.sandbox import isolation

NBGRADER = str(Path(sys.executable).parent / "nbgrader")
FULL = 5  # the mlp exercise's points: architecture 2, parameters 1, accuracy 2

SABOTAGE = ORPHAN_SOURCE + '''
import glob, json, os, sys
CANARY, MARK, COURSE, TAG = {canary!r}, {mark!r}, {course!r}, {tag!r}
RAISES = {{"nbformat": 4, "nbformat_minor": 5, "metadata": {{}}, "cells": [{{"cell_type": "code", "metadata": {{}},
          "execution_count": None, "outputs": [], "id": "x",
          "source": "def build_model():\\n    raise RuntimeError('sabotaged')"}}]}}

def sabotage():
    places, here = [COURSE], os.getcwd()
    while True:  # (a) walking up from the working folder
        places.append(here)
        if here == os.path.dirname(here):
            break
        here = os.path.dirname(here)
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        places += [f"/proc/{{pid}}/cwd", f"/proc/{{pid}}/root{{COURSE}}"]
    for folder in places:
        if not os.path.exists(os.path.join(folder, CANARY)):  # only ever this test's class folder
            continue
        try:
            open(os.path.join(folder, MARK), "x").close()
            with open(os.path.join(folder, "gradebook.db"), "r+b") as db:
                db.truncate(0)
        except OSError:
            pass
        for other in glob.glob(os.path.join(folder, "submitted", "*", "mlp", "*.ipynb")):  # (b)
            if "/mallory/" not in other:
                try:
                    with open(other, "w") as f:
                        json.dump(RAISES, f)
                except OSError:
                    pass

def sabotaged(build):  # a decorator: grading runs it, since build_model() needs it (it runs when defined)
    for step in (sabotage, lambda: orphan(TAG)):  # (c) a detached grandchild
        try:
            step()
        except Exception:
            pass
    return build

@sabotaged
'''


@pytest.fixture(autouse=True)
def jailed():
    state = isolation()
    if not state.ok:
        pytest.skip(f"no bubblewrap jail on this machine: {state.reason}")


def solution_answer() -> str:
    """The reference build_model cell (solutions/mlp/mlp.ipynb), as an honest student would hand it in."""
    nb = nbformat.read(REPO / "solutions" / "mlp" / "mlp.ipynb", as_version=4)
    return next(c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "build_model")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def nbgrader(folder: Path, *args: str, env: dict | None = None) -> str:
    proc = subprocess.run([NBGRADER, *args], cwd=folder, env=env or tool_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-5000:]
    return proc.stdout


@pytest.fixture
def classroom(course):
    """classroom({"alice": source, ...}) -> a course folder (anyone may write in it) where generate_assignment
    released mlp and each student handed in the stub with their build_model cell."""
    made = []

    def make(answers: dict[str, str]) -> Path:
        folder = Path(tempfile.mkdtemp(prefix="deepgrade-class-"))
        made.append(folder)
        (folder / "nbgrader_config.py").write_text(nbgrader_config(course, profile="smoke", seed=1))
        nbgrader(folder, "generate_assignment", "mlp", "--force")
        stub = folder / "exercises" / "mlp" / "mlp.ipynb"
        for student, source in answers.items():
            path = folder / "submitted" / student / "mlp" / "mlp.ipynb"
            path.parent.mkdir(parents=True)
            nbformat.write(fill(stub, {"build_model": source}), path)
        return folder

    yield make
    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)


def open_to_anyone(folder: Path) -> None:
    """Every folder 0o777, every file 0o666: if the jail let a student see this folder, nothing else would stop her."""
    folder.chmod(0o777)
    for path in folder.rglob("*"):
        path.chmod(0o777 if path.is_dir() else 0o666)


@pytest.mark.slow
def test_saboteur_cannot_touch_the_gradebook_or_other_students(classroom):
    canary, mark, tag = (f"deepgrade-{kind}-{uuid.uuid4().hex}" for kind in ("canary", "attack", "attack"))
    honest = solution_answer()
    folder = classroom({"alice": honest, "zoe": honest, "mallory": "placeholder"})
    mallory = folder / "submitted" / "mallory" / "mlp" / "mlp.ipynb"
    nbformat.write(fill(mallory, {"build_model": SABOTAGE.format(canary=canary, mark=mark, course=str(folder),
                                                                 tag=tag) + honest}), mallory)
    (folder / canary).write_text("")
    (folder / "gradebook.db").touch()  # nbgrader made it on generate_assignment; make sure it is there to attack
    open_to_anyone(folder)
    before = {s: sha256(folder / "submitted" / s / "mlp" / "mlp.ipynb") for s in ("alice", "zoe")}

    start = time.monotonic()
    try:
        log = nbgrader(folder, "autograde", "mlp", "--force")
        deadline = time.monotonic() + 5
        while tagged(tag) and time.monotonic() < deadline:
            time.sleep(0.2)
        lingering = tagged(tag)
    finally:
        for pid in tagged(tag):  # mallory's process, if the jail let it live
            try:
                os.kill(pid, 9)
            except OSError:
                pass
    took = time.monotonic() - start

    with sqlite3.connect(folder / "gradebook.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert sorted(r[0] for r in db.execute("SELECT id FROM student")) == ["alice", "mallory", "zoe"]
    rows = {row["student"]: row for row in gradebook(folder, "mlp")}
    assert set(rows) == {"alice", "mallory", "zoe"}, log[-3000:]
    for student in ("alice", "zoe"):
        assert rows[student]["score"] == FULL, (student, rows[student], log[-3000:])
        assert sha256(folder / "submitted" / student / "mlp" / "mlp.ipynb") == before[student], student
    assert rows["mallory"]["max_score"] == FULL  # graded on her own model, whatever it earns
    assert not (folder / mark).exists(), "mallory reached the class folder"
    assert not lingering, f"mallory's process outlived the grade: {lingering}"
    print(f"autograde of 3 students took {took:.0f} s; mallory scored {rows['mallory']['score']:g}")


def test_saboteur_control_without_a_jail_the_attack_lands(tmp_path, monkeypatch):
    """Mallory's code, run with no jail from a folder laid out like a class, does the damage the test above
    asserts the jail prevents: that test is not passing because the attack is a dud."""
    from deepgrade.sandbox import run_notebook

    canary, mark, tag = (f"deepgrade-{kind}-{uuid.uuid4().hex}" for kind in ("canary", "attack", "attack"))
    folder = tmp_path / "class"
    for student in ("alice", "mallory"):
        (folder / "submitted" / student / "mlp").mkdir(parents=True)
        (folder / "submitted" / student / "mlp" / "mlp.ipynb").write_text(f"{student}'s work")
    (folder / "gradebook.db").write_text("grades")
    (folder / canary).write_text("")
    source = SABOTAGE.format(canary=canary, mark=mark, course=str(folder / "elsewhere"), tag=tag)
    path = tmp_path / "mallory.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import keras\nfrom keras import layers\n" + source + solution_answer())]), path)
    monkeypatch.chdir(folder)  # this process's /proc/<pid>/cwd: the way in, without a jail
    monkeypatch.setenv("DEEPGRADE_BWRAP", "off")
    try:
        sub = run_notebook(path, ["build_model"], tmp_path / "out")
        time.sleep(1)
        lingering = tagged(tag)
    finally:
        for pid in tagged(tag):
            try:
                os.kill(pid, 9)
            except OSError:
                pass
    assert sub.isolation.startswith("none (")
    assert "build_model" in sub.models, sub.failure or sub.errors
    assert (folder / mark).exists()
    assert (folder / "gradebook.db").stat().st_size == 0
    assert "sabotaged" in (folder / "submitted" / "alice" / "mlp" / "mlp.ipynb").read_text()
    assert (folder / "submitted" / "mallory" / "mlp" / "mlp.ipynb").read_text() == "mallory's work"
    assert lingering, "without a jail, the setsid grandchild outlives the run"


def graded_cells(folder: Path, student: str) -> tuple[list[tuple[str, str]], dict]:
    """(grade_id, all its output text) of each test cell of the student's autograded notebook, and the notebook's
    deepgrade metadata."""
    nb = nbformat.read(folder / "autograded" / student / "mlp" / "mlp.ipynb", as_version=4)
    found = []
    for cell in nb.cells:
        info = cell.metadata.get("nbgrader", {})
        if info.get("grade") and not info.get("solution"):
            text = "\n".join(str(o.get("text", "")) + str(o.get("evalue", "")) + "\n".join(o.get("traceback", []))
                             for o in cell.get("outputs", []))
            found.append((info["grade_id"], text))
    return found, nb.metadata.get("deepgrade", {})


@pytest.mark.slow
def test_unisolated_autograde_refuses_unless_opted_out(classroom):
    folder = classroom({"alice": solution_answer()})
    off = {**tool_env(), "DEEPGRADE_BWRAP": "off"}

    log = nbgrader(folder, "autograde", "mlp", "--force", env=off)
    cells, meta = graded_cells(folder, "alice")
    assert [name for name, _ in cells] == ["architecture", "parameters", "accuracy"]
    for name, text in cells:
        assert "bubblewrap" in text and "allow_unisolated" in text, (name, text, log[-3000:])
    assert "grader_error" in meta.get("environment", {}), meta
    assert gradebook(folder, "mlp")[0]["score"] == 0

    log = nbgrader(folder, "autograde", "mlp", "--force", "--TrustedGrade.allow_unisolated=True", env=off)
    cells, meta = graded_cells(folder, "alice")
    assert meta["environment"]["isolation"].startswith("none ("), meta.get("environment")
    assert "DEEPGRADE_BWRAP=off" in meta["environment"]["isolation"]
    for name, text in cells:
        assert "without isolation" in text or "not isolated" in text, (name, text)
    assert gradebook(folder, "mlp")[0]["score"] == FULL, log[-3000:]
