"""Architecture and parameter checks: equivalent formulations pass, mismatches name the layer."""

import keras
import pytest
from keras import layers

from conftest import REPO
from deepgrade.grader import CheckFailed, check_architecture, check_parameters, expected_params, observe


def load_autograder(exercise: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"autograder_{exercise}", REPO / "autograders" / f"test_{exercise}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MLP = load_autograder("mlp").EXPECTED
SHAPE = (28, 28, 1)


def sequential_fused():
    return keras.Sequential([keras.Input(SHAPE), layers.Flatten(), layers.Dense(256, activation="relu"),
                             layers.Dropout(0.4), layers.Dense(256, activation="relu"), layers.Dropout(0.4),
                             layers.Dense(10, activation="softmax")])


def sequential_input_shape_and_activation_layers():
    return keras.Sequential([layers.Flatten(input_shape=SHAPE), layers.Dense(256), layers.Activation("relu"),
                             layers.Dropout(0.4), layers.Dense(256), layers.Activation("relu"), layers.Dropout(0.4),
                             layers.Dense(10), layers.Activation("softmax")])


def functional_with_relu_and_softmax_layers():
    inputs = keras.Input(SHAPE)
    x = layers.Flatten()(inputs)
    x = layers.ReLU()(layers.Dense(256)(x))
    x = layers.Dropout(0.4)(x)
    x = layers.Dense(256, activation="relu")(x)
    x = layers.Dropout(0.4)(x)
    return keras.Model(inputs, layers.Softmax()(layers.Dense(10)(x)))


def nested():
    body = keras.Sequential([layers.Dense(256, activation="relu"), layers.Dropout(0.4),
                             layers.Dense(256, activation="relu"), layers.Dropout(0.4)])
    return keras.Sequential([keras.Input(SHAPE), layers.Flatten(), body, layers.Dense(10, activation="softmax")])


@pytest.mark.parametrize("build", [sequential_fused, sequential_input_shape_and_activation_layers,
                                   functional_with_relu_and_softmax_layers, nested])
def test_equivalent_formulations_pass(build):
    model = build()
    assert "6 layers as expected" in check_architecture(model, MLP)
    assert check_parameters(model, MLP, SHAPE) == "269,322 parameters, as expected."


def test_seed_total_is_269322():
    assert expected_params(MLP, SHAPE) == [0, 200960, 0, 65792, 0, 2570]


def test_wrong_units_names_the_layer_in_both_checks():
    model = keras.Sequential([keras.Input(SHAPE), layers.Flatten(), layers.Dense(128, activation="relu"),
                              layers.Dropout(0.4), layers.Dense(256, activation="relu"), layers.Dropout(0.4),
                              layers.Dense(10, activation="softmax")])
    name = model.layers[1].name
    with pytest.raises(CheckFailed) as arch:
        check_architecture(model, MLP)
    assert str(arch.value) == f"Layer 2 (Dense {name!r}): expected units=256. Received: units=128."
    with pytest.raises(CheckFailed) as params:
        check_parameters(model, MLP, SHAPE)
    assert str(params.value).startswith(f"Layer 2 (Dense {name!r}): expected 200,960 parameters")
    assert "Received: 100,480" in str(params.value) and "received 136,074" in str(params.value)


def test_no_dropout_fails_architecture_passes_parameters():
    model = keras.Sequential([keras.Input(SHAPE), layers.Flatten(), layers.Dense(256, activation="relu"),
                              layers.Dense(256, activation="relu"), layers.Dense(10, activation="softmax")])
    with pytest.raises(CheckFailed, match=r"^Layer 3 \(Dense '.*'\): expected Dropout\(rate=0\.4\)\. Received: Dense\.$"):
        check_architecture(model, MLP)
    check_parameters(model, MLP, SHAPE)


def test_wrong_activation_and_rate():
    model = sequential_fused()
    model.layers[-1].activation = keras.activations.get("sigmoid")
    with pytest.raises(CheckFailed, match=r"Layer 6 .*expected activation='softmax'\. Received: activation='sigmoid'"):
        check_architecture(model, MLP)
    model = sequential_fused()
    model.layers[2].rate = 0.5
    with pytest.raises(CheckFailed, match=r"Layer 3 .*expected rate=0\.4\. Received: rate=0\.5"):
        check_architecture(model, MLP)


def test_missing_and_extra_layers():
    short = keras.Sequential([keras.Input(SHAPE), layers.Flatten(), layers.Dense(256, activation="relu")])
    with pytest.raises(CheckFailed, match=r"^Layer 3: expected Dropout\(rate=0\.4\)\. Received: nothing, the model ends after layer 2"):
        check_architecture(short, MLP)
    with pytest.raises(CheckFailed, match=r"^Layer 3: expected Dropout\(rate=0\.4\) \(0 parameters\)\. Received: nothing, "
                       r"the model ends after layer 2\. Total: expected 269,322, received 200,960\.") as info:
        check_parameters(short, MLP, SHAPE)  # the layer the architecture check names, not the next with weights
    assert [row.position for row in info.value.layers if row.differs] == [3]
    assert [row.received for row in info.value.layers][2:] == [None] * 4  # missing, in the feedback's table
    long = sequential_fused()
    long.add(layers.Dense(10, activation="softmax"))
    with pytest.raises(CheckFailed, match=r"^Layer 7 \(Dense .*expected no more layers after layer 6"):
        check_architecture(long, MLP)
    with pytest.raises(CheckFailed, match=r"Layer 7 \(Dense .*\): expected no layer here\. Received: a Dense with 110 parameters"):
        check_parameters(long, MLP, SHAPE)


def test_leaky_relu_is_not_relu():
    model = keras.Sequential([keras.Input(SHAPE), layers.Flatten(), layers.Dense(256),
                              layers.ReLU(negative_slope=0.1)])
    assert [o.kind for o in observe(model)] == ["Flatten", "Dense", "ReLU"]


def test_autograder_expectation_matches_the_seed():
    module = load_autograder("mlp")
    assert [str(layer) for layer in module.EXPECTED] == [
        "Flatten()", "Dense(units=256, activation='relu')", "Dropout(rate=0.4)",
        "Dense(units=256, activation='relu')", "Dropout(rate=0.4)", "Dense(units=10, activation='softmax')"]
    assert sum(expected_params(module.EXPECTED, module.INPUT_SHAPE)) == module.TOTAL_PARAMS == 269_322


def test_parameters_name_the_layer_whose_count_is_off_when_the_first_difference_has_the_right_count():
    model = keras.Sequential([keras.Input(SHAPE), layers.Flatten(), layers.Dense(256, activation="sigmoid"),
                              layers.Dropout(0.4), layers.Dense(128, activation="relu"), layers.Dropout(0.4),
                              layers.Dense(10, activation="softmax")])
    with pytest.raises(CheckFailed, match=r"^Layer 2 .*expected activation='relu'"):
        check_architecture(model, MLP)
    with pytest.raises(CheckFailed, match=r"^Layer 4 \(Dense .*expected 65,792 parameters .* Received: 32,896\."):
        check_parameters(model, MLP, SHAPE)


def test_a_very_deep_model_gets_a_bounded_table_and_its_verdict():
    from deepgrade.protocol import CheckResult

    deep = keras.Sequential([keras.Input(SHAPE), layers.Flatten(), *[layers.Dense(10) for _ in range(300)]])
    with pytest.raises(CheckFailed) as info:
        check_parameters(deep, MLP, SHAPE)
    rows = info.value.layers
    assert len(rows) == 201 and rows[-1].received == "... and 101 more layers" and rows[1].differs
    assert len(CheckResult(name="p", passed=False, points=0, max_points=1, message="m", layers=rows).layers) == 201
