"""End to end: `deepgrade check` on real notebooks, graded by the trusted grader in the smoke profile."""

import json

import pytest

from conftest import REPO, by_name
from deepgrade.cli import main
from deepgrade.grader import grade_notebook
from deepgrade.sandbox import isolation

CHECKS = ["architecture", "parameters", "accuracy"]


def test_solution_passes_every_check(graded):
    report = graded("mlp", "solution")
    assert [c.name for c in report.checks] == CHECKS
    assert all(c.passed for c in report.checks), report.checks
    assert report.score == report.max_score == 5
    env = report.environment
    assert env["seed"] == 1 and env["device"] == "cpu" and env["versions"]["keras"].startswith("3.15")
    assert env["train_size"] == 10000 and env["epochs"] == 3
    assert env["isolation"] == isolation().label
    assert env["threads"] >= 1  # TensorFlow's CPU numbers depend on it


def test_a_grade_records_the_threads_it_ran_on(monkeypatch):
    import os

    from deepgrade.grader.environment import threads

    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads() == 3
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "1")  # what a worker of the grader pool is given (backend.process_env)
    assert threads() == 1


def test_grade_notebook_grades_in_the_graders_jail_and_says_so(course):
    """The whole path: the student's jail, then the grader's (course, data, model read-only; report by pipe)."""
    report = grade_notebook(course, "mlp", REPO / "solutions/mlp/mlp.ipynb", profile="smoke", seed=1,
                            only=["parameters"])
    assert [(c.name, c.passed) for c in report.checks] == [("parameters", True)]
    assert report.environment["isolation"] == isolation().label
    assert report.environment["seed"] == 1


def test_stub_fails_every_check_cleanly(graded):
    report = graded("mlp", "stub")
    assert report.score == 0 and [c.name for c in report.checks] == CHECKS
    for c in report.checks:
        assert not c.passed and c.points == 0
        assert "not done yet" in c.message and "NotImplementedError" in c.message
        assert "Traceback" not in c.message


def test_correct_functional_submission_passes(graded):
    assert graded("mlp", "correct").passed


def test_wrong_units_fails_architecture_and_parameters_naming_the_layer(checked):
    checks = by_name(checked("mlp", "wrong_units", ["architecture", "parameters"]))
    assert not checks["architecture"].passed and not checks["parameters"].passed
    assert checks["architecture"].message.startswith("Layer 2 (Dense ")
    assert "expected units=256. Received: units=128." in checks["architecture"].message
    assert checks["parameters"].message.startswith("Layer 2 (Dense ")
    assert "expected 200,960 parameters" in checks["parameters"].message


def test_no_dropout_fails_architecture_passes_parameters(checked):
    checks = by_name(checked("mlp", "no_dropout", ["architecture", "parameters"]))
    assert not checks["architecture"].passed
    assert "expected Dropout(rate=0.4). Received: Dense." in checks["architecture"].message
    assert checks["parameters"].passed and checks["parameters"].points == 1


@pytest.mark.parametrize("answer, message", [
    ("raises", "build_model() raised ValueError: I am not sure how many units the last layer needs"),
    ("returns_none", "build_model() returned None; expected a Keras model"),
    ("lambda_layer", "contains a Lambda layer"),
])
def test_broken_submissions_get_zero_with_a_message(graded, answer, message):
    report = graded("mlp", answer)
    assert report.score == 0 and len(report.checks) == 3
    assert all(message in c.message for c in report.checks), report.checks


@pytest.mark.slow
def test_infinite_loop_gets_zero_and_the_run_finishes(edited_course, make_submission):
    from deepgrade.course import load_course

    root = edited_course(lambda d: d["exercises"]["mlp"]["sandbox"].update(time_limit_s=8))
    report = grade_notebook(load_course(root), "mlp", make_submission("mlp", "infinite_loop"), profile="smoke", seed=1)
    assert report.score == 0
    assert all("did not finish within the time limit of 8 s" in c.message for c in report.checks)


def test_tampering_in_the_notebook_earns_nothing(graded):
    checks = by_name(graded("mlp", "tampering"))
    assert not checks["architecture"].passed and not checks["parameters"].passed
    assert "Received: 7,850" in checks["parameters"].message


@pytest.mark.slow
def test_the_same_seed_reproduces_the_grade(course, graded):
    first = by_name(graded("mlp", "solution"))["accuracy"].message
    again = grade_notebook(course, "mlp", course.source_notebook("mlp"), profile="smoke", seed=1, only=["accuracy"])
    assert by_name(again)["accuracy"].message == first


@pytest.mark.slow
def test_cli_json_shape_and_exit_codes(capsys, make_submission):
    code = main(["check", "mlp", str(make_submission("mlp", "no_dropout")), "--json", "--profile", "smoke",
                 "--seed", "1", "--course", str(REPO)])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert set(out) == {"exercise", "profile", "score", "max_score", "checks", "environment"}
    assert out["exercise"] == "mlp" and out["profile"] == "smoke" and out["max_score"] == 5
    assert [set(c) for c in out["checks"]] == [{"name", "passed", "points", "max_points", "message"}] * 3
    assert out["score"] == sum(c["points"] for c in out["checks"]) == 3


@pytest.mark.slow
def test_cli_table_for_a_student(capsys):
    code = main(["check", "mlp", str(REPO / "exercises" / "mlp" / "mlp.ipynb"), "--profile", "smoke",
                 "--course", str(REPO)])
    out = capsys.readouterr().out
    assert code == 1
    assert "architecture" in out and "0 / 2" in out and "FAIL" in out and "score 0 / 5" in out


def test_cli_usage_errors(capsys):
    assert main(["check", "mlp", "/nonexistent.ipynb", "--course", str(REPO)]) == 2
    assert "expected an existing .ipynb file" in capsys.readouterr().err
    assert main(["check", "mlpp", str(REPO / "exercises/mlp/mlp.ipynb"), "--course", str(REPO)]) == 2
    assert "Did you mean 'mlp'?" in capsys.readouterr().err
    assert main(["check", "mlp", str(REPO / "exercises/mlp/mlp.ipynb"), "--profile", "fast", "--course", str(REPO)]) == 2
