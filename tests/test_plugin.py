"""The pytest plugin, tested with real pytest sessions (pytester) on a fake course and a fake autograder."""

import json
import textwrap

import keras
import pytest

COURSE = """
name: fake course
exercises:
  fake:
    title: a fake exercise
    notebook: fake.ipynb
    autograder: autograders/test_fake.py
    checks:
      good: {points: 2}
      bad: {points: 3}
      plain: {points: 1}
      model_size: {points: 1}
    profiles:
      smoke: {epochs: 1, thresholds: {accuracy: 0.5}}
"""

AUTOGRADER = """
from deepgrade.grader import CheckFailed

def test_good(passed):
    passed("all fine")

def test_bad():
    raise CheckFailed("Layer 1 (Dense 'd'): expected units=3. Received: units=4.")

def test_plain():
    assert 1 == 2, "one is not two"

def test_model_size(model, passed):
    passed(f"{model.count_params()} parameters")
"""


@pytest.fixture
def fake(pytester, tmp_path):
    pytester.makefile(".yml", course=COURSE)
    pytester.makefile(".ipynb", fake="{}")
    pytester.mkdir("autograders")
    pytester.path.joinpath("autograders", "test_fake.py").write_text(textwrap.dedent(AUTOGRADER))
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    path = tmp_path / "m.keras"
    model.save(path)
    return path


def run(pytester, model, *extra):
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess(
        "autograders/test_fake.py", "-p", "no:cacheprovider", "--deepgrade-model", str(model),
        "--deepgrade-profile", "smoke", "--deepgrade-seed", "42", "--deepgrade-report", str(report), *extra)
    return result, (json.loads(report.read_text()) if report.exists() else None)


def test_points_and_messages_travel_to_the_report(pytester, fake):
    result, report = run(pytester, fake)
    result.assert_outcomes(passed=2, failed=2)
    checks = {c["name"]: c for c in report["checks"]}
    assert list(checks) == ["good", "bad", "plain", "model_size"]  # course.yml order
    assert checks["good"] == {"name": "good", "passed": True, "points": 2, "max_points": 2, "message": "all fine",
                              "trains": False, "layers": []}
    assert checks["bad"]["points"] == 0 and checks["bad"]["max_points"] == 3
    assert checks["bad"]["message"] == "Layer 1 (Dense 'd'): expected units=3. Received: units=4."
    assert checks["plain"]["message"] == "one is not two"
    assert checks["model_size"]["message"] == "8 parameters"
    assert report["score"] == 3 and report["max_score"] == 7
    assert report["exercise"] == "fake" and report["profile"] == "smoke"
    assert report["environment"]["seed"] == 42


def test_a_grader_bug_is_not_blamed_on_the_student(pytester, fake):
    pytester.path.joinpath("autograders", "test_fake.py").write_text(
        AUTOGRADER.replace('passed("all fine")', '{}["missing"]'))
    _, report = run(pytester, fake)
    good = next(c for c in report["checks"] if c["name"] == "good")
    assert not good["passed"] and "The grader failed on this check (KeyError" in good["message"]
    assert "not a problem with your work" in good["message"]
    assert report["environment"]["grader_errors"] == ["good"]


def test_tests_and_checks_must_correspond(pytester, fake):
    pytester.path.joinpath("autograders", "test_fake.py").write_text(AUTOGRADER + "\ndef test_extra():\n    pass\n")
    result, report = run(pytester, fake)
    assert report is None
    assert "Autograder tests without a check in course.yml: ['extra']" in result.stderr.str()


def test_selecting_checks_with_k(pytester, fake):
    result, report = run(pytester, fake, "-k", "test_good or test_bad")
    assert [c["name"] for c in report["checks"]] == ["good", "bad"]


def test_without_a_submission_the_plugin_stays_out_of_the_way(pytester, fake):
    result = pytester.runpytest_subprocess("autograders/test_fake.py", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2, skipped=1)
