"""nbgrader: the committed stubs are what generate_assignment makes, and autograde records deepgrade's points."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from deepgrade.demo import run_demo, tool_env
from deepgrade.grading import grade

from conftest import REPO, SUBMISSIONS

NBGRADER = str(Path(sys.executable).parent / "nbgrader")


def comparable(path: Path) -> dict:
    return json.loads(Path(path).read_text())


@pytest.mark.parametrize("exercise", ["mlp"])
def test_committed_stub_matches_generate_assignment(tmp_path, course, exercise):
    shutil.copytree(REPO / "solutions", tmp_path / "solutions")
    shutil.copy(REPO / "nbgrader_config.py", tmp_path)
    proc = subprocess.run([NBGRADER, "generate_assignment", exercise, "--force"], cwd=tmp_path, env=tool_env(),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    generated = tmp_path / "exercises" / exercise
    committed = REPO / "exercises" / exercise
    assert sorted(p.name for p in generated.iterdir()) == sorted(p.name for p in committed.iterdir())
    for path in generated.iterdir():
        assert comparable(path) == comparable(committed / path.name), (
            f"{committed / path.name} has drifted from solutions/: run `nbgrader generate_assignment {exercise} --force`")


def test_notebooks_are_committed_without_outputs():
    for path in [*REPO.glob("solutions/**/*.ipynb"), *REPO.glob("exercises/**/*.ipynb")]:
        nb = nbformat.read(path, as_version=4)
        assert all(not c.get("outputs") and not c.get("execution_count") for c in nb.cells if c.cell_type == "code"), path


def test_test_cells_match_course_yml(course):
    for name, exercise in course.course.exercises.items():
        nb = nbformat.read(course.source_notebook(name), as_version=4)
        cells = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"] for c in nb.cells
                 if c.metadata.get("nbgrader", {}).get("grade") and not c.metadata["nbgrader"].get("solution")}
        assert cells == {check: spec.points for check, spec in exercise.checks.items()}


def test_autograde_records_the_same_points_as_deepgrade_check(tmp_path, course):
    out = tmp_path / "demo"
    rows = run_demo(course, out, profile="smoke", seed=3)
    by_student = {row["student"]: row for row in rows}
    assert set(by_student) == {"alice", "bob", "carol"}
    assert by_student["alice"]["score"] == 5 and by_student["carol"]["score"] == 0
    for student, answer in {"alice": "correct", "bob": "wrong_layer", "carol": "raises"}.items():
        submitted = out / "submitted" / student / "mlp" / "mlp.ipynb"
        report = grade(course, "mlp", submitted, profile="smoke", seed=3)
        assert by_student[student]["checks"] == {c.name: c.points for c in report.checks}, student
        assert by_student[student]["score"] == report.score
        recorded = json.loads((out / "autograded" / student / "mlp" / "mlp.deepgrade.json").read_text())
        assert recorded["environment"]["seed"] == 3 and recorded["environment"]["device"] == "cpu"
    bob = (out / "feedback" / "bob" / "mlp" / "mlp.html").read_text()
    assert "expected Dropout(rate=0.4). Received: Dense." in bob
    with open(out / "grades.csv") as f:
        scores = {r["student_id"]: float(r["score"]) for r in csv.DictReader(f)}
    assert scores == {s: row["score"] for s, row in by_student.items()}
