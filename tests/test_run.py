"""Grading as a library call: the autograder runs in this process, checks are selected by exact name, the
autograder and course.yml must agree whatever is selected, and failures land where they belong."""

import keras
import nbformat
import pytest

from conftest import REPO
from deepgrade.cli import main
from deepgrade.course import load_course
from deepgrade.errors import ConfigError
from deepgrade.grader import grade
from deepgrade.protocol import Report, Submission


def mlp_file(tmp_path, units=256):
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(units, activation="relu"), keras.layers.Dropout(0.4),
                              keras.layers.Dense(256, activation="relu"), keras.layers.Dropout(0.4),
                              keras.layers.Dense(10, activation="softmax")])
    path = tmp_path / "model.keras"
    model.save(path)
    return Submission.of_model("build_model", path)


def test_checks_are_selected_by_exact_name(checked):
    """`parameters` is not a substring match: the CNN's `strided_parameters` is not graded with it."""
    report = checked("cnn", "correct", ["parameters"])
    assert [c.name for c in report.checks] == ["parameters"] and report.passed


def test_many_grades_in_one_process_do_not_leak_into_each_other(course, tmp_path):
    good = grade(course, "mlp", mlp_file(tmp_path), profile="smoke", seed=1, only=["architecture", "parameters"])
    (tmp_path / "b").mkdir()
    bad = grade(course, "mlp", mlp_file(tmp_path / "b", units=128), profile="smoke", seed=2,
                only=["architecture", "parameters"])
    again = grade(course, "mlp", mlp_file(tmp_path), profile="smoke", seed=1, only=["architecture", "parameters"])
    assert good.passed and not bad.passed and again.passed
    assert [c.message for c in good.checks] == [c.message for c in again.checks]
    assert bad.environment["seed"] == 2 and good.environment["seed"] == 1


def test_an_unknown_check_name_is_a_config_error(course, tmp_path):
    with pytest.raises(ConfigError, match=r"Unknown check of 'mlp': expected one of architecture, parameters, "
                                          r"accuracy. Received: 'paramters'.") as info:
        grade(course, "mlp", mlp_file(tmp_path), profile="smoke", only=["paramters"])
    assert info.value.tip == "Did you mean 'parameters'?"


def test_autograder_and_course_must_agree_even_when_one_check_is_selected(edited_course, tmp_path):
    root = edited_course(lambda data: None)
    autograder = root / "autograders" / "test_mlp.py"
    autograder.write_text(autograder.read_text() + "\n\ndef test_extra(passed):\n    passed('never graded')\n")
    with pytest.raises(ConfigError, match=r"Autograder tests without a check in course.yml: \['extra'\]"):
        grade(load_course(root), "mlp", mlp_file(tmp_path), profile="smoke", only=["architecture"])


def test_a_missing_test_is_a_config_error(edited_course, tmp_path):
    root = edited_course(lambda data: None)
    autograder = root / "autograders" / "test_mlp.py"
    autograder.write_text(autograder.read_text().replace("def test_parameters(", "def helper_parameters("))
    with pytest.raises(ConfigError, match=r"course.yml declares checks with no test in the autograder: \['parameters'\]"):
        grade(load_course(root), "mlp", mlp_file(tmp_path), profile="smoke", only=["architecture"])


def test_the_report_round_trips_as_json(course, tmp_path):
    report = grade(course, "mlp", mlp_file(tmp_path), profile="smoke", seed=5, only=["architecture"])
    report.write(tmp_path / "r.json")
    again = Report.read(tmp_path / "r.json")
    assert again == report and again.to_dict()["score"] == 2 and again.to_dict()["max_score"] == 2


def test_an_unexpected_exception_is_a_grader_failure_exit_3(monkeypatch, capsys):
    import deepgrade.grader

    def broken(*args, **kwargs):
        raise KeyError("a bug in deepgrade")

    monkeypatch.setattr(deepgrade.grader, "grade_notebook", broken)
    code = main(["check", "mlp", str(REPO / "exercises" / "mlp" / "mlp.ipynb"), "--course", str(REPO)])
    err = capsys.readouterr().err
    assert code == 3
    assert "the grader failed (KeyError: 'a bug in deepgrade')" in err and "not a problem with your work" in err
    assert "Traceback" in err  # for the instructor's bug report


def test_nbgrader_records_any_exception_as_this_notebooks_grader_failure(monkeypatch):
    import deepgrade.nbgrader_ext as ext

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(ext, "grade_here", broken)  # what TrustedGrade grades with
    nb = nbformat.read(REPO / "exercises" / "mlp" / "mlp.ipynb", as_version=4)
    step = ext.TrustedGrade(course=str(REPO))
    out, _ = step.preprocess(nb, {"nbgrader": {"assignment": "mlp", "student": "dave", "notebook": "mlp"}})
    verdicts = [c.outputs for c in out.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert len(verdicts) == 3
    for outputs in verdicts:
        assert outputs[0]["output_type"] == "error" and outputs[0]["ename"] == "GraderError"
        assert "the grader failed (RuntimeError: disk on fire)" in outputs[0]["evalue"]
    assert out.metadata["deepgrade"]["environment"]["grader_error"].startswith("the grader failed")


def test_the_profile_from_the_environment_is_validated(monkeypatch):
    from deepgrade.grader import default_profile

    monkeypatch.setenv("DEEPGRADE_PROFILE", "smoke")
    assert default_profile() == "smoke"
    monkeypatch.setenv("DEEPGRADE_PROFILE", "fulll")
    with pytest.raises(ConfigError, match=r"DEEPGRADE_PROFILE: expected one of smoke, full. Received: 'fulll'.") as info:
        default_profile()
    assert info.value.tip == "Did you mean 'full'?"
