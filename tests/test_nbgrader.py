"""nbgrader: the committed stubs are what generate_assignment makes, and autograde records deepgrade's points."""

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import REPO, generate_assignments
from deepgrade.course import fill
from deepgrade.demo import gradebook, nbgrader, nbgrader_config, run_demo
from deepgrade.quiz import NBGRADER_VARIANT, available, load_bank, make_quiz, source_notebook

NBGRADER = str(Path(sys.executable).parent / "nbgrader")


def comparable(path: Path) -> dict:
    return json.loads(Path(path).read_text())


ASSIGNMENTS = sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir())


def test_every_exercise_and_quiz_is_an_assignment(course):
    assert set(course.course.exercises) | {f"quiz_{q}" for q in available(REPO)} == set(ASSIGNMENTS)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """Every assignment released by nbgrader's own generate_assignment app from a copy of solutions/ (one Python
    and nbgrader start for all of them)."""
    here = tmp_path_factory.mktemp("generated")
    shutil.copytree(REPO / "solutions", here / "solutions")
    shutil.copy(REPO / "nbgrader_config.py", here)
    generate_assignments(here, ASSIGNMENTS)
    return here / "exercises"


@pytest.mark.parametrize("exercise", ASSIGNMENTS)
def test_committed_stub_matches_generate_assignment(generated, exercise):
    generated = generated / exercise
    committed = REPO / "exercises" / exercise

    def files(folder):
        return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())

    assert files(generated) == files(committed)
    for name in files(generated):
        made, kept = generated / name, committed / name
        same = comparable(made) == comparable(kept) if name.endswith(".ipynb") else made.read_bytes() == kept.read_bytes()
        assert same, f"{kept} has drifted from solutions/: run `nbgrader generate_assignment {exercise} --force`"


def test_notebooks_are_committed_without_outputs():
    tracked = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=REPO, capture_output=True, text=True).stdout.split()
    assert len(tracked) >= 11
    for path in (REPO / p for p in tracked):
        nb = nbformat.read(path, as_version=4)
        assert all(not c.get("outputs") and not c.get("execution_count") for c in nb.cells if c.cell_type == "code"), path


def test_test_cells_match_course_yml(course):
    for name, exercise in course.course.exercises.items():
        nb = nbformat.read(course.source_notebook(name), as_version=4)
        cells = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"] for c in nb.cells
                 if c.metadata.get("nbgrader", {}).get("grade") and not c.metadata["nbgrader"].get("solution")}
        assert cells == {check: spec.points for check, spec in exercise.checks.items()}


@pytest.mark.slow
def test_autograde_records_the_same_points_as_deepgrade_check(tmp_path, course, graded):
    out = tmp_path / "demo"
    rows = run_demo(course, out, profile="smoke", seed=1)
    by_student = {row["student"]: row for row in rows}
    assert set(by_student) == {"alice", "bob", "carol"}
    assert by_student["alice"]["score"] == 5 and by_student["carol"]["score"] == 0
    for student, answer in {"alice": "correct", "bob": "wrong_layer", "carol": "raises"}.items():
        report = graded("mlp", answer)  # the same filled stub, graded by `deepgrade check`'s library call
        assert by_student[student]["checks"] == {c.name: c.points for c in report.checks}, student
        assert by_student[student]["score"] == report.score
        recorded = json.loads((out / "autograded" / student / "mlp" / "mlp.deepgrade.json").read_text())
        assert recorded["environment"]["seed"] == 1 and recorded["environment"]["device"] == "cpu"
    bob = (out / "feedback" / "bob" / "mlp" / "mlp.html").read_text()
    assert "expected Dropout(rate=0.4). Received: Dense." in bob
    # deepgrade's feedback: each check named in the contents with PASS or FAIL, its verdict and the layer table;
    # no test cell's source; the training run's plots
    assert re.search(r"dg-mark fail\">FAIL</span>\s*<a href=\"#architecture\">Check <code>architecture</code>", bob)
    assert "Test cell" not in bob and "exercises.mlp.checks.architecture" not in bob  # the test cell's own source
    assert '# Check "architecture" (2 points), graded by deepgrade' in bob
    assert "dg-differs" in bob and "first difference" in bob and bob.count("data:image/png;base64,") == 3
    alice = (out / "feedback" / "alice" / "mlp" / "mlp.html").read_text()
    assert alice.count('dg-mark pass">PASS') == 6 and "dg-mark fail" not in alice  # the contents and each check
    with open(out / "grades.csv") as f:
        scores = {r["student_id"]: float(r["score"]) for r in csv.DictReader(f)}
    assert scores == {s: row["score"] for s, row in by_student.items()}


@pytest.mark.parametrize("name", available(REPO))
def test_quiz_sources_match_their_banks(name):
    committed = comparable(REPO / "solutions" / f"quiz_{name}" / f"quiz_{name}.ipynb")
    assert committed == json.loads(nbformat.writes(source_notebook(make_quiz(load_bank(name, REPO), NBGRADER_VARIANT)))), (
        f"solutions/quiz_{name} has drifted from quizzes/{name}.yml: run `deepgrade quiz {name} --nbgrader`")


@pytest.mark.parametrize("name", available(REPO))
def test_released_quiz_hides_the_answers(name):
    quiz = make_quiz(load_bank(name, REPO), NBGRADER_VARIANT)
    release = nbformat.read(REPO / "exercises" / f"quiz_{name}" / f"quiz_{name}.ipynb", as_version=4)
    code = "\n".join(c.source for c in release.cells if c.cell_type == "code")
    assert "HIDDEN TESTS" not in code and "'answer':" not in code and "answer_1 =" not in code
    for number, variant in enumerate(quiz.variants, start=1):
        assert f"answer_check({number}, answer_{number}, {variant.kind!r}" in code


@pytest.mark.slow
def test_quiz_round_trip_through_nbgrader(tmp_path, course):
    from rich.console import Console

    console = Console(quiet=True)
    (tmp_path / "nbgrader_config.py").write_text(nbgrader_config(course, profile=None, seed=None))
    nbgrader(tmp_path, "generate_assignment", "quiz_pooling", "--force", console=console)
    stub = tmp_path / "exercises" / "quiz_pooling" / "quiz_pooling.ipynb"
    quiz = make_quiz(load_bank("pooling", REPO), NBGRADER_VARIANT)
    right = {f"q{n}_answer": f"answer_{n} = {v.answer!r}" for n, v in enumerate(quiz.variants, start=1)}
    partly = dict(right)
    partly["q1_answer"] = "answer_1 = [[10, 7], [8, 11]]"  # one number wrong
    partly["q2_answer"] = "answer_2 = '5.75 4.25; 5.25 8.5'"  # text in the terminal's format: accepted
    partly["q4_answer"] = "answer_4 = 'seven by seven'"  # malformed
    del partly["q5_answer"]  # left as the stub: raises NotImplementedError
    for student, answers in {"ace": right, "partly": partly}.items():
        path = tmp_path / "submitted" / student / "quiz_pooling" / "quiz_pooling.ipynb"
        path.parent.mkdir(parents=True)
        nbformat.write(fill(stub, answers), path)
    nbgrader(tmp_path, "autograde", "quiz_pooling", "--force", console=console)
    rows = {row["student"]: row for row in gradebook(tmp_path, "quiz_pooling")}
    assert rows["ace"]["score"] == rows["ace"]["max_score"] == quiz.max_score == 7
    assert rows["partly"]["score"] == 4
    assert rows["partly"]["checks"] == {"q1": 0, "q2": 1, "q3": 1, "q4": 0, "q5": 0, "q6": 1, "q7": 1}
    graded = nbformat.read(tmp_path / "autograded" / "partly" / "quiz_pooling" / "quiz_pooling.ipynb", as_version=4)
    errors = [o for c in graded.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert any("Question 1: not quite. Hint:" in o.evalue for o in errors)
    assert any("Question 4:" in o.evalue and "AnswerFormatError" == o.ename for o in errors)
    # the feedback: no hidden test, no answer (every student's variant is the same: it would be the class's key)
    nbgrader(tmp_path, "generate_feedback", "quiz_pooling", "--force", console=console)
    source = (REPO / "solutions" / "quiz_pooling" / "quiz_pooling.ipynb").read_text()
    assert "BEGIN HIDDEN TESTS" in source
    for student in ("ace", "partly"):
        feedback = (tmp_path / "feedback" / student / "quiz_pooling" / "quiz_pooling.html").read_text()
        assert "HIDDEN TESTS" not in feedback and "answer_check" not in feedback and "&#39;answer&#39;" not in feedback
        for variant in quiz.variants:
            if variant.kind in ("matrix", "shape"):
                assert str(variant.answer) not in feedback and repr(variant.answer) not in feedback, (student, variant.id)
        assert "Check <code>q1</code>" in feedback
    partly = (tmp_path / "feedback" / "partly" / "quiz_pooling" / "quiz_pooling.html").read_text()
    assert "FAIL: Question 1: not quite. Hint:" in partly and "[[10, 7], [8, 12]]" in source
    # formgrader's "Generate Feedback" goes through nbgrader's API, which forces the template named `feedback`
    from deepgrade.batch.gradebook import Classroom

    (tmp_path / "feedback" / "partly" / "quiz_pooling" / "quiz_pooling.html").unlink()
    result = Classroom(tmp_path, course).api.generate_feedback("quiz_pooling", "partly")
    assert result["success"], result.get("error") or result.get("log")
    again = (tmp_path / "feedback" / "partly" / "quiz_pooling" / "quiz_pooling.html").read_text()
    assert "dg-toc" in again and "HIDDEN TESTS" not in again and "answer_check" not in again
