"""End to end: `deepgrade check` on real notebooks, graded by the trusted grader in the smoke profile."""

import json

import pytest

from deepgrade.cli import main
from deepgrade.grading import grade
from deepgrade.sandbox import network_isolation

from conftest import REPO, by_name

CHECKS = ["architecture", "parameters", "accuracy"]


@pytest.fixture(scope="module")
def graded(course, make_submission):
    """graded(answer, only=None) -> Report, cached per module (each grade runs a sandbox and a grader)."""
    cache = {}

    def get(answer, only=None):
        key = (answer, tuple(only or ()))
        if key not in cache:
            path = course.source_notebook("mlp") if answer == "solution" else (
                course.release_notebook("mlp") if answer == "stub" else make_submission("mlp", answer))
            cache[key] = grade(course, "mlp", path, profile="smoke", seed=1, only=only)
        return cache[key]

    return get


def test_solution_passes_every_check(graded):
    report = graded("solution")
    assert [c.name for c in report.checks] == CHECKS
    assert all(c.passed for c in report.checks), report.checks
    assert report.score == report.max_score == 5
    env = report.environment
    assert env["seed"] == 1 and env["device"] == "cpu" and env["versions"]["keras"].startswith("3.15")
    assert env["train_size"] == 10000 and env["epochs"] == 3
    assert env["sandbox_network"] == ("isolated" if network_isolation() else "shared")


def test_stub_fails_every_check_cleanly(graded):
    report = graded("stub")
    assert report.score == 0 and [c.name for c in report.checks] == CHECKS
    for c in report.checks:
        assert not c.passed and c.points == 0
        assert "not done yet" in c.message and "NotImplementedError" in c.message
        assert "Traceback" not in c.message


def test_correct_functional_submission_passes(graded):
    assert graded("correct").passed


def test_wrong_units_fails_architecture_and_parameters_naming_the_layer(graded):
    checks = by_name(graded("wrong_units", only=["architecture", "parameters"]))
    assert not checks["architecture"].passed and not checks["parameters"].passed
    assert checks["architecture"].message.startswith("Layer 2 (Dense ")
    assert "expected units=256. Received: units=128." in checks["architecture"].message
    assert checks["parameters"].message.startswith("Layer 2 (Dense ")
    assert "expected 200,960 parameters" in checks["parameters"].message


def test_no_dropout_fails_architecture_passes_parameters(graded):
    checks = by_name(graded("no_dropout", only=["architecture", "parameters"]))
    assert not checks["architecture"].passed
    assert "expected Dropout(rate=0.4). Received: Dense." in checks["architecture"].message
    assert checks["parameters"].passed and checks["parameters"].points == 1


@pytest.mark.parametrize("answer, message", [
    ("raises", "build_model() raised ValueError: I am not sure how many units the last layer needs"),
    ("returns_none", "build_model() returned None; expected a Keras model"),
    ("lambda_layer", "contains a Lambda layer"),
])
def test_broken_submissions_get_zero_with_a_message(graded, answer, message):
    report = graded(answer)
    assert report.score == 0 and len(report.checks) == 3
    assert all(message in c.message for c in report.checks), report.checks


def test_infinite_loop_gets_zero_and_the_run_finishes(edited_course, make_submission):
    from deepgrade.config import load_course

    root = edited_course(lambda d: d["exercises"]["mlp"]["sandbox"].update(time_limit_s=8))
    report = grade(load_course(root), "mlp", make_submission("mlp", "infinite_loop"), profile="smoke", seed=1)
    assert report.score == 0
    assert all("did not finish within the time limit of 8 s" in c.message for c in report.checks)


def test_tampering_in_the_notebook_earns_nothing(graded):
    checks = by_name(graded("tampering", only=["architecture", "parameters"]))
    assert not checks["architecture"].passed and not checks["parameters"].passed
    assert "Received: 7,850" in checks["parameters"].message


def test_the_same_seed_reproduces_the_grade(course, graded):
    first = by_name(graded("solution"))["accuracy"].message
    again = grade(course, "mlp", course.source_notebook("mlp"), profile="smoke", seed=1, only=["accuracy"])
    assert by_name(again)["accuracy"].message == first


def test_cli_json_shape_and_exit_codes(capsys, make_submission):
    code = main(["check", "mlp", str(make_submission("mlp", "no_dropout")), "--json", "--profile", "smoke",
                 "--seed", "1", "--course", str(REPO)])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert set(out) == {"exercise", "profile", "score", "max_score", "checks", "environment"}
    assert out["exercise"] == "mlp" and out["profile"] == "smoke" and out["max_score"] == 5
    assert [set(c) for c in out["checks"]] == [{"name", "passed", "points", "max_points", "message"}] * 3
    assert out["score"] == sum(c["points"] for c in out["checks"]) == 3


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
