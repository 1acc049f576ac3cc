"""Grading a class: ``deepgrade autograde`` on a real ``distributed.LocalCluster`` of worker processes, real
nbgrader gradebooks (SQLite and a real PostgreSQL server), kill-and-resume, two batches at once, and reuse.

One class of the ``mlp`` exercise is graded once (module fixture) and reused: alice hands in the reference,
bob a wrong layer, carol a build_model() that raises, dave a notebook whose process kills itself, erin a file
that is not a notebook. Safe if a defence fails: everything lives in temporary folders; the PostgreSQL server
runs from a temporary data folder on a Unix socket only and is stopped (fast mode) at the end.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from rich.console import Console

from conftest import SUBMISSIONS
from deepgrade.batch.autograde import autograde
from deepgrade.batch.gradebook import Classroom
from deepgrade.course import write_submission
from deepgrade.demo import nbgrader, nbgrader_config, tool_env

pytestmark = pytest.mark.slow

FULL = 5  # mlp: architecture 2, parameters 1, accuracy 2
CRASH = "import os, signal\n\ndef build_model():\n    os.kill(os.getpid(), signal.SIGKILL)\n"
STUDENTS = {"alice": "correct", "bob": "wrong_layer", "carol": "raises"}


def make_class(folder: Path, course, students: dict[str, str], *, db_url: str | None = None) -> Path:
    """An nbgrader course folder with the mlp assignment released and ``students`` handed in."""
    folder.mkdir(parents=True)
    config = nbgrader_config(course, profile="smoke", seed=None)
    if db_url:
        config += f"c.CourseDirectory.db_url = {db_url!r}\n"
    (folder / "nbgrader_config.py").write_text(config)
    nbgrader(folder, "generate_assignment", "mlp", "--force", console=Console(quiet=True))
    stub = folder / "exercises" / "mlp" / "mlp.ipynb"
    for student, answer in students.items():
        target = folder / "submitted" / student / "mlp" / "mlp.ipynb"
        if answer.endswith(".py") or "\n" in answer:  # an answer written here
            source = folder / f"{student}.py"
            source.write_text(answer)
            write_submission(stub, source, target)
        else:
            write_submission(stub, SUBMISSIONS / "mlp" / f"{answer}.py", target)
    return folder


def gradebook_rows(folder: Path) -> dict:
    return Classroom(folder).recorded("mlp")


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory, course):
    folder = make_class(tmp_path_factory.mktemp("class") / "course", course,
                        {**STUDENTS, "dave": CRASH})
    erin = folder / "submitted" / "erin" / "mlp" / "mlp.ipynb"
    erin.parent.mkdir(parents=True)
    erin.write_text("this is not a notebook")
    outcome = autograde(Classroom(folder, course, profile="smoke", seed=3), "mlp", workers=2,
                        console=Console(quiet=True), min_per_worker=1)  # a real cluster, for 4 notebooks
    return folder, outcome


def test_a_class_is_graded_in_parallel_into_the_gradebook(graded_class):
    folder, outcome = graded_class
    rows = gradebook_rows(folder)
    assert rows["alice"]["score"] == FULL
    assert rows["bob"]["checks"]["architecture"] == 0 and rows["bob"]["score"] < FULL
    assert rows["carol"]["score"] == 0 and rows["dave"]["score"] == 0
    by_student = {row.student: row for row in outcome.summary.rows}
    assert set(by_student) == {"alice", "bob", "carol", "dave", "erin"}
    assert all(row.recorded is None for row in by_student.values() if row.student != "erin")
    assert "killed by SIGKILL" in by_student["dave"].report.checks[0].message
    assert "not a notebook" in by_student["erin"].report.checks[0].message or \
        "could not read" in by_student["erin"].report.checks[0].message
    # four notebooks went to the pool; each report was computed by the grader in its jail, with its seed
    assert len(outcome.graded) == 4 and all(g.finished for g in outcome.graded)
    reports = [json.loads(p.read_text()) for p in (folder / ".deepgrade" / "grades" / "results").rglob("*.json")]
    assert len(reports) == 4 and {r["environment"]["isolation"] for r in reports} == {"bubblewrap"}
    seeds = [r["environment"].get("seed") for r in reports]
    assert seeds.count(3) == 4, seeds  # every grade records the batch's seed
    # persistent workers: 4 grades on 2 workers, so at least one grade found its grader already warm
    assert any(g.grader_warm for g in outcome.graded)


def test_the_class_summary_is_written_as_csv_and_png(graded_class):
    folder, outcome = graded_class
    with open(outcome.csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["student"] for row in rows] == ["alice", "bob", "carol", "dave", "erin"]
    assert [float(row["architecture"]) for row in rows] == [2, 0, 0, 0, 0]
    assert rows[1]["first_failure"].startswith("architecture: Layer 3 (Dense")
    assert rows[0]["gradebook"] == "recorded" and rows[4]["gradebook"] != "recorded"  # erin: nbgrader refused
    assert outcome.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rates = outcome.summary.pass_rates()
    assert rates["architecture"] == pytest.approx(1 / 5)
    groups = {message: (checks, students) for message, checks, students in outcome.summary.failures()}
    raised = next(m for m in groups if "raised ValueError" in m)
    assert groups[raised] == (["architecture", "parameters", "accuracy"], ["carol"])


def test_a_rerun_grades_nothing_again_and_plain_nbgrader_reuses_the_grades(graded_class, course, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(graded_class[0], folder)
    # the seed set in nbgrader_config.py (not passed): the batch and plain nbgrader both grade under it
    config = folder / "nbgrader_config.py"
    config.write_text(config.read_text() + "c.TrustedGrade.seed = 3\n")
    again = autograde(Classroom(folder, course), "mlp", workers=2, console=Console(quiet=True))
    assert again.graded == []
    assert {r.student for r in again.summary.rows if r.reused} == {"alice", "bob", "carol", "dave"}
    before = gradebook_rows(folder)
    # plain nbgrader finds the finished grades by their key
    proc = subprocess.run([str(Path(sys.executable).parent / "nbgrader"), "autograde", "mlp", "--force"], cwd=folder,
                          env=tool_env(), capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    failed = set(re.findall(r"error processing assignment 'mlp' for student '(\w+)'", log))
    assert proc.returncode == 1 and failed == {"erin"}, log[-3000:]  # erin's file is not a notebook
    assert log.count("a finished grade reused") == 4, log[-3000:]
    after = gradebook_rows(folder)
    assert {s: r["score"] for s, r in after.items()} == {s: r["score"] for s, r in before.items()}
    integrity = sqlite3.connect(folder / "gradebook.db").execute("PRAGMA integrity_check").fetchone()[0]
    assert integrity == "ok"


def test_a_pool_is_started_only_when_each_worker_gets_enough():
    """A local pool imports Keras again in each worker: for a few notebooks, this process grades them in turn."""
    from deepgrade.batch.pool import MIN_PER_WORKER, InProcess, Pool, pool_for

    assert isinstance(pool_for(2, None, 2 * MIN_PER_WORKER - 1), InProcess)
    assert isinstance(pool_for(1, None, 100), InProcess)
    chosen = pool_for(4, None, 3 * MIN_PER_WORKER)
    assert isinstance(chosen, Pool) and chosen.workers == 3
    assert isinstance(pool_for(2, "tcp://scheduler:8786", 1), Pool)  # a cluster given is always used


def test_a_changed_submission_alone_is_graded_again(graded_class, course, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(graded_class[0], folder)
    notebook = folder / "submitted" / "bob" / "mlp" / "mlp.ipynb"
    write_submission(folder / "exercises" / "mlp" / "mlp.ipynb", SUBMISSIONS / "mlp" / "no_dropout.py", notebook)
    outcome = autograde(Classroom(folder, course, profile="smoke", seed=3), "mlp", workers=1,
                        console=Console(quiet=True))
    assert len(outcome.graded) == 1
    rows = gradebook_rows(folder)
    assert rows["bob"]["checks"]["architecture"] == 0 and rows["bob"]["checks"]["accuracy"] == 2
    assert "Dropout" in outcome.summary.rows[1].report.check("architecture").message
    # the same code as another student's, under the same settings, is that grade: carol hands in alice's
    twin = folder / "submitted" / "carol" / "mlp" / "mlp.ipynb"
    shutil.copyfile(folder / "submitted" / "alice" / "mlp" / "mlp.ipynb", twin)
    again = autograde(Classroom(folder, course, profile="smoke", seed=3), "mlp", workers=1,
                      console=Console(quiet=True))
    assert again.graded == [] and gradebook_rows(folder)["carol"]["score"] == FULL


def test_two_batches_at_once_keep_the_gradebook_whole(graded_class, tmp_path):
    """Both write every student (from the stored grades) at the same time: the lock makes them take turns."""
    folder = tmp_path / "copy"
    shutil.copytree(graded_class[0], folder)
    cmd = [str(Path(sys.executable).parent / "deepgrade"), "autograde", "mlp", "--seed", "3", "--profile", "smoke",
           "--workers", "1"]
    procs = [subprocess.Popen(cmd, cwd=folder, env=tool_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for _ in range(2)]
    outputs = [proc.communicate(timeout=600)[0] for proc in procs]
    # erin's file is not a notebook: each batch reports her as not recorded (exit 3), and records the others
    assert all("Not recorded in the gradebook: erin/mlp" in out for out in outputs), outputs[0][-3000:]
    assert sqlite3.connect(folder / "gradebook.db").execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = gradebook_rows(folder)
    assert rows["alice"]["score"] == FULL and rows["bob"]["checks"]["architecture"] == 0


def test_a_killed_batch_loses_nothing_and_resumes_where_it_stopped(tmp_path, course):
    # three different notebooks (identical ones share one grade): alice and zoe pass, bob does not
    zoe = "import keras\nfrom keras import layers\n\n\n" + (SUBMISSIONS / "mlp" / "correct.py").read_text() + "\n# zoe\n"
    folder = make_class(tmp_path / "course", course, {"alice": "correct", "bob": "wrong_layer", "zoe": zoe})
    results = folder / ".deepgrade" / "grades" / "results"
    cmd = [str(Path(sys.executable).parent / "deepgrade"), "autograde", "mlp", "--seed", "5", "--profile", "smoke",
           "--workers", "1"]
    proc = subprocess.Popen(cmd, cwd=folder, env=tool_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and not list(results.rglob("*.json")) and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the batch, its Dask cluster and (dying with them) their jails
    proc.wait()
    kept = {p: p.read_bytes() for p in results.rglob("*.json")}
    assert 1 <= len(kept) < 3, "the batch was killed after its first grade was stored"
    assert all(json.loads(data)["exercise"] == "mlp" for data in kept.values())  # whole files, never half-written
    outcome = autograde(Classroom(folder, course, profile="smoke", seed=5), "mlp", workers=1,
                        console=Console(quiet=True))
    assert len(outcome.graded) == 3 - len(kept)  # only what had not finished is graded again
    assert all(p.read_bytes() == data for p, data in kept.items())
    rows = gradebook_rows(folder)
    assert rows["alice"]["score"] == FULL and rows["zoe"]["score"] == FULL and rows["bob"]["score"] < FULL


@pytest.fixture
def postgres():
    """A real PostgreSQL server (Debian's), started in a temporary folder on a Unix socket, stopped after."""
    bindir = Path("/usr/lib/postgresql")
    versions = sorted(bindir.glob("*/bin/initdb"))
    assert versions, "PostgreSQL is not installed: `make setup` installs Debian's postgresql"
    bin_ = versions[-1].parent
    folder = Path(tempfile.mkdtemp(prefix="deepgrade-pg-"))  # the server's user must reach it: not under 0700 dirs
    os.chmod(folder, 0o777)
    data, socket = folder / "data", folder
    # PostgreSQL refuses to run as root: as root, its commands run as Debian's `postgres` user
    as_user = {"user": "postgres", "group": "postgres", "extra_groups": []} if os.geteuid() == 0 else {}

    def pg(*args: str) -> None:
        subprocess.run(args, check=True, capture_output=True, timeout=120, cwd=folder, **as_user)

    pg(str(bin_ / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
    pg(str(bin_ / "pg_ctl"), "-D", str(data), "-w", "-l", str(folder / "log"), "-o",
       f"-k {socket} -c listen_addresses='' -p 54329", "start")
    try:
        pg(str(bin_ / "createdb"), "-h", str(socket), "-p", "54329", "-U", "postgres", "gradebook")
        yield f"postgresql+psycopg2://postgres@/gradebook?host={socket}&port=54329"
    finally:
        subprocess.run([str(bin_ / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True,
                       timeout=120, cwd=folder, **as_user)
        shutil.rmtree(folder, ignore_errors=True)


def test_the_gradebook_can_be_postgresql(graded_class, course, tmp_path, postgres):
    """The same class, its gradebook in a real PostgreSQL server through nbgrader's db_url; the grades come
    from the first batch's store (same submissions, same settings: the same keys)."""
    folder = make_class(tmp_path / "course", course, STUDENTS, db_url=postgres)
    shutil.copytree(graded_class[0] / ".deepgrade", folder / ".deepgrade")
    outcome = autograde(Classroom(folder, course, profile="smoke", seed=3), "mlp", workers=1,
                        console=Console(quiet=True))
    assert outcome.graded == [] and all(row.recorded is None for row in outcome.summary.rows)
    rows = gradebook_rows(folder)
    assert set(rows) == {"alice", "bob", "carol"}
    assert rows["alice"]["score"] == FULL and rows["carol"]["score"] == 0
    assert rows["bob"]["checks"] == {"architecture": 0, "parameters": 0, "accuracy": 2}
    import sqlalchemy

    engine = sqlalchemy.create_engine(postgres)
    with engine.connect() as conn:  # the rows are in PostgreSQL itself
        count = conn.execute(sqlalchemy.text("select count(*) from submitted_assignment")).scalar()
    assert count == 3
