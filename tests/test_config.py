"""course.yml is validated on load; every mistake names the file, the key path and what was expected."""

from pathlib import Path

import pytest
import yaml

from conftest import REPO
from deepgrade.cli import main
from deepgrade.course import load_course
from deepgrade.errors import ConfigError


def write(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load((REPO / "course.yml").read_text())
    edit(data)
    tmp_path.mkdir(parents=True, exist_ok=True)
    for part in ("autograders", "solutions", "tests"):
        (tmp_path / part).symlink_to(REPO / part)
    (tmp_path / "course.yml").write_text(yaml.safe_dump(data, sort_keys=False))  # course.yml's own order
    return tmp_path


def test_the_course_loads(course):
    mlp = course.exercise("mlp")
    assert mlp.entry == "build_model"
    assert list(mlp.checks) == ["architecture", "parameters", "accuracy"]
    assert course.profile("mlp", "smoke").thresholds.accuracy is not None
    assert course.release_notebook("mlp") == REPO / "exercises" / "mlp" / "mlp.ipynb"


def test_unknown_key_gets_did_you_mean(tmp_path):
    root = write(tmp_path, lambda d: d["exercises"]["mlp"]["profiles"]["smoke"].update(epocs=3))
    with pytest.raises(ConfigError) as info:
        load_course(root)
    text = str(info.value)
    assert str(root / "course.yml") in text
    assert "exercises.mlp.profiles.smoke.epocs" in text
    assert "Did you mean 'epochs'?" in text


def test_wrong_type_names_key_and_expected(tmp_path):
    root = write(tmp_path, lambda d: d["exercises"]["mlp"]["profiles"]["smoke"].update(epochs="three"))
    with pytest.raises(ConfigError) as info:
        load_course(root)
    assert "exercises.mlp.profiles.smoke.epochs: expected an integer. Received: 'three'." in str(info.value)


def test_missing_notebook_is_reported(tmp_path):
    root = write(tmp_path, lambda d: d["exercises"]["mlp"].update(notebook="solutions/mlp/nope.ipynb"))
    with pytest.raises(ConfigError, match=r"exercises\.mlp\.notebook: expected an existing file\. Received: 'solutions/mlp/nope.ipynb'"):
        load_course(root)


def test_missing_required_key(tmp_path):
    root = write(tmp_path, lambda d: d["exercises"]["mlp"]["checks"]["accuracy"].pop("points"))
    with pytest.raises(ConfigError, match=r"exercises\.mlp\.checks\.accuracy\.points: missing"):
        load_course(root)


def test_unknown_exercise_did_you_mean(course):
    with pytest.raises(ConfigError, match="Did you mean 'mlp'"):
        course.exercise("mpl")


def test_cli_reports_config_errors_without_traceback(tmp_path, capsys):
    root = write(tmp_path, lambda d: d["exercises"]["mlp"].update(chekcs=d["exercises"]["mlp"]["checks"]))
    assert main(["validate", "--course", str(root)]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'chekcs'" in err and "Did you mean 'checks'?" in err
    assert "Traceback" not in err


def test_cli_bad_yaml(tmp_path, capsys):
    (tmp_path / "course.yml").write_text("name: [unclosed\n")
    assert main(["validate", "--course", str(tmp_path)]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_baseline_must_name_real_checks(tmp_path):
    root = write(tmp_path, lambda d: d["exercises"]["mlp"]["baselines"]["logistic"].update(fails=["acuracy"]))
    with pytest.raises(ConfigError, match=r"baselines\.logistic\.fails: expected checks of mlp .*Received: \['acuracy'\]"):
        load_course(root)


def test_answers_are_checked_like_baselines(tmp_path):
    """course.yml's answers students give: real checks to fail, an existing file, a name no baseline has."""
    def answer(name, **spec):
        return lambda d: d["exercises"]["regularization"].setdefault("answers", {}).update(
            {name: {"answer": "tests/submissions/regularization/dropout.py", "why": "w", **spec}})

    root = write(tmp_path / "checks", answer("dropout", fails=["gapp"]))
    with pytest.raises(ConfigError, match=r"exercises\.regularization\.answers\.dropout\.fails: expected checks of "
                                          r"regularization \(keeps_baseline, accuracy, gap\)\. Received: \['gapp'\]"):
        load_course(root)
    root = write(tmp_path / "file", answer("dropout", answer="tests/submissions/regularization/none.py"))
    with pytest.raises(ConfigError, match=r"exercises\.regularization\.answers\.dropout\.answer: expected an existing file"):
        load_course(root)
    root = write(tmp_path / "clash", answer("overfit", fails=["gap"]))
    with pytest.raises(ConfigError, match=r"expected each answer's name to differ from the baselines'. Received: \['overfit'\]"):
        load_course(root)
