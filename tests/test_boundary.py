"""The trust boundary's rules: no weights cross in a model's config, only `keras`/`keras.*` objects load, the
limits are one list (README and course.yml follow it), and grading other people's work refuses where no jail
can be made unless the instructor opted out; every grade says how it was isolated.

Safe if a defence fails: smuggled weights are only ever trained and measured; nothing here runs student code
outside a jail except the tiny models the tests build themselves.
"""

import re
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import layers

from conftest import edit_config
from deepgrade.course import load_course
from deepgrade.course.schema import Sandbox
from deepgrade.errors import ConfigError, StudentCodeError
from deepgrade.protocol import inspect_archive
from deepgrade.protocol.modelfile import MAX_CONFIG_BYTES, MAX_NUMBERS, keras_module
from deepgrade.sandbox import LIMITS, Limits, isolation, jail, launch, policy

REPO = Path(__file__).resolve().parent.parent


def mlp(**dense):
    return keras.Sequential([keras.Input((28, 28, 1)), layers.Flatten(), layers.Dense(10, activation="softmax",
                                                                                        **dense)])


def saved(model, tmp_path, name="m.keras"):
    path = tmp_path / name
    model.save(path)
    return path


# -- smuggled weights ---------------------------------------------------------------------------------------

def test_constant_initializer_holding_trained_weights_is_refused(tmp_path):
    """The attack: weights trained anywhere (the test set included) ride in Constant(<array>), which survives
    saving, safe_mode loading and clone_model; with SGD(learning_rate=0) the grader would measure them."""
    trained = np.random.default_rng(0).normal(size=(784, 10)).astype("float32")
    model = mlp(kernel_initializer=keras.initializers.Constant(trained))
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss="sparse_categorical_crossentropy")
    with pytest.raises(StudentCodeError, match=r"^Layer 2 \(Dense '\w+'\) carries data in its configuration "
                                               r"\(a Constant initializer holding an array\)"):
        inspect_archive(saved(model, tmp_path))


def test_array_anywhere_in_a_config_is_refused(tmp_path):
    def plant(config):
        config["config"]["layers"][2]["config"]["units_note"] = {"class_name": "__numpy__",
                                                                  "config": {"value": [1.0], "dtype": "float32"}}

    with pytest.raises(StudentCodeError, match=r"carries data .*an array \(__numpy__\)"):
        inspect_archive(edit_config(saved(mlp(), tmp_path), plant))


def test_long_numeric_list_is_refused(tmp_path):
    def plant(config):
        config["config"]["layers"][2]["config"]["extra"] = [[0.5] * 8] * (MAX_NUMBERS // 8 + 1)

    with pytest.raises(StudentCodeError, match=rf"a list of {MAX_NUMBERS + 8} numbers; at most {MAX_NUMBERS}"):
        inspect_archive(edit_config(saved(mlp(), tmp_path), plant))


def test_many_short_lists_are_refused_together(tmp_path):
    def plant(config):
        for i in range(50):
            config["config"]["layers"][2]["config"][f"extra_{i}"] = [0.5] * 60

    with pytest.raises(StudentCodeError, match=r"more than 2,048 numbers"):
        inspect_archive(edit_config(saved(mlp(), tmp_path), plant))


def test_data_in_a_long_string_is_refused(tmp_path):
    def plant(config):
        config["config"]["layers"][2]["config"]["name"] = "w" * 5000

    with pytest.raises(StudentCodeError, match=r"a string of 5,000 characters"):
        inspect_archive(edit_config(saved(mlp(), tmp_path), plant))


def test_oversized_config_is_refused_before_it_is_parsed(tmp_path):
    def plant(config):
        config["padding"] = " " * (MAX_CONFIG_BYTES + 1)

    with pytest.raises(StudentCodeError, match=r"config\.json is [\d,]+ bytes; expected at most 262,144"):
        inspect_archive(edit_config(saved(mlp(), tmp_path), plant))


def test_plain_settings_are_accepted(tmp_path):
    """What honest students write: scalar constants, named initializers, regularizers, dropout, shapes."""
    model = keras.Sequential([
        keras.Input((28, 28, 1)), layers.Conv2D(8, 3, strides=(2, 2), padding="same",
                                                kernel_regularizer=keras.regularizers.l2(1e-4)),
        layers.BatchNormalization(), layers.Flatten(), layers.Dropout(0.4),
        layers.Dense(10, activation="softmax", bias_initializer=keras.initializers.Constant(0.1)),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    assert inspect_archive(saved(model, tmp_path))["class_name"] == "Sequential"


@pytest.mark.parametrize("module", ["keras_hub.layers", "keras_nlp", "kerasfoo", "keras_cv.models"])
def test_only_keras_and_its_submodules_load(tmp_path, module):
    def relabel(config):
        config["config"]["layers"][2]["module"] = module

    assert not keras_module(module)
    with pytest.raises(StudentCodeError, match=rf"from '{module}', which is not a built-in Keras object"):
        inspect_archive(edit_config(saved(mlp(), tmp_path), relabel))


@pytest.mark.parametrize("module", ["keras", "keras.layers", "keras.src.layers.core.dense"])
def test_keras_modules_are_keras(module):
    assert keras_module(module)


# -- limits as one list -------------------------------------------------------------------------------------

def test_readme_limits_table_is_made_from_the_policy():
    readme = (REPO / "README.md").read_text()
    found = re.search(r"<!-- limits:start -->\n(.*?)<!-- limits:end -->", readme, re.S)
    assert found, "README.md lost its limits table markers"
    assert found.group(1) == policy.table(), "README's limits table drifted: paste `deepgrade sandbox --table`"


def test_course_yml_sandbox_section_knows_every_student_limit():
    assert set(Sandbox.model_fields) == {limit.key for limit in LIMITS}


def test_course_yml_values_override_the_student_defaults():
    exercise = load_course(REPO).exercise("mlp")
    limits = Limits.of("student", **exercise.sandbox.model_dump())
    assert limits.time_limit_s == 120 and limits.processes == policy.STUDENT.processes


def test_bubblewrap_command_holds_every_limit_and_hides_the_host(tmp_path):
    spec = jail.Jail(argv=["/usr/bin/true"], cwd="/home/student", env={}, limits=Limits.of("student", scratch_mb=7),
                     mounts=[jail.Mount(tmp_path, "/home/student/in")])
    args, _ = jail.command(spec, None)
    joined = " ".join(args)
    assert "--unshare-all" in args and "--die-with-parent" in args and "--uid 65534" in joined
    assert f"--size {7 * 2**20} --tmpfs /home/student" in joined
    assert f"--ro-bind {tmp_path} /home/student/in" in joined
    assert "/root " not in joined and "/home " not in joined.replace("/home/student", "")
    assert set(jail.rlimits(spec.limits)) == set(launch.RLIMITS)


# -- where no jail can be made ------------------------------------------------------------------------------

def test_grading_others_refuses_without_a_jail(monkeypatch, tmp_path):
    from deepgrade.grader import grade_notebook

    monkeypatch.setenv(jail.BWRAP_ENV, "off")
    assert not isolation().ok
    with pytest.raises(ConfigError, match=r"needs the sandbox.*turned off by DEEPGRADE_BWRAP=off.*allow_unisolated"):
        grade_notebook(load_course(REPO), "mlp", REPO / "solutions/mlp/mlp.ipynb", others=True)


def test_a_missing_bubblewrap_is_said(monkeypatch):
    monkeypatch.setenv(jail.BWRAP_ENV, "/nonexistent/bwrap")
    assert isolation().reason.startswith("bubblewrap is not installed: apt-get install bubblewrap")


def test_check_table_says_a_grade_was_not_isolated():
    from rich.console import Console

    from deepgrade.cli import render
    from deepgrade.protocol import CheckResult, Report

    report = Report(exercise="mlp", profile="smoke", environment={"isolation": "none (turned off)", "seed": 1},
                    checks=[CheckResult(name="parameters", passed=True, points=1, max_points=1, message="ok")])
    console = Console(record=True, width=120)
    render(report, console)
    assert "graded without isolation: turned off" in console.export_text()


def test_a_system_python_does_not_bind_all_of_usr(monkeypatch):
    """Debian's python3.11 has base prefix /usr: binding it whole would show the jail /usr/share/datasets."""
    monkeypatch.setattr("sys.base_prefix", "/usr")
    dests = {mount.dest for mount in jail.python_mounts()}
    assert not dests & {"/", "/usr", "/usr/share"}, dests
