"""The regularization exercise: the grader measures test accuracy and the train-minus-test gap itself,
on 2,000 images; early stopping arrives as data (fit_options) and the grader builds the callback."""

import pytest

from conftest import by_name, graded_solution
from deepgrade.errors import StudentCodeError
from deepgrade.grader import CheckFailed, Layer, Training, check_gap, check_keeps_layers
from deepgrade.protocol import FitOptions, parse_options

CHECKS = ["keeps_baseline", "accuracy", "gap"]
BASELINE = [Layer("Dense", units=512), Layer("Dense", units=512), Layer("Dense", units=10)]


def test_solution_passes_every_check(graded):
    report = graded_solution(graded, "regularization", CHECKS)
    metrics = report.environment["metrics"]
    assert metrics["gap"] == pytest.approx(metrics["train_accuracy"] - metrics["test_accuracy"], abs=1e-6)
    assert report.environment["train_size"] == 2000


def test_stub_fails_every_check_cleanly(graded):
    report = graded("regularization", "stub")
    assert report.score == 0 and all("not done yet" in c.message for c in report.checks)


def test_unregularized_baseline_fails_the_gap_check_only(graded):
    checks = by_name(graded("regularization", "overfit"))
    assert checks["keeps_baseline"].passed and checks["accuracy"].passed
    assert not checks["gap"].passed
    assert checks["gap"].message.startswith("The model still over-fits: expected a train-minus-test accuracy gap of at most")


def test_early_stopping_comes_as_data_and_the_grader_applies_it(graded):
    report = graded("regularization", "early_stopping")
    env = report.environment
    assert env["validation_size"] == 400 and env["train_size"] == 1600
    assert env["epochs_run"] < env["epochs"] == 40
    assert "early stopping ended it after" in by_name(report)["gap"].message


def test_options_must_be_plain_valid_data(graded):
    checks = by_name(graded("regularization", "callback_object"))
    assert "not plain data" in checks["gap"].message and "return their settings" in checks["gap"].message
    checks = by_name(graded("regularization", "bad_options"))
    assert "needs held-out images: set validation_split" in checks["accuracy"].message


def _mlp(*middle):
    import keras

    return keras.Sequential([keras.Input((28, 28, 1)), *middle])


def test_keeps_layers_accepts_every_regularizer_and_names_what_was_added():
    from keras import layers, regularizers

    model = _mlp(layers.RandomTranslation(0.1, 0.1), layers.RandomFlip("horizontal"), layers.Flatten(),
                 layers.Dense(512, kernel_regularizer=regularizers.l2(1e-4)), layers.BatchNormalization(),
                 layers.Activation("relu"), layers.GaussianNoise(0.1), layers.Dense(512, activation="relu"),
                 layers.Dropout(0.5), layers.Dense(10, activation="softmax"))
    message = check_keeps_layers(model, BASELINE)
    for added in ("BatchNormalization", "Dropout", "GaussianNoise", "RandomFlip", "RandomTranslation",
                  "weight penalties on 1 layer(s)"):
        assert added in message


def test_keeps_layers_refuses_new_layers_with_weights_and_missing_ones():
    from keras import layers

    with pytest.raises(CheckFailed, match=r"Layer 1 \(Conv2D '[^']+'\): expected only regularization layers"):
        check_keeps_layers(_mlp(layers.Conv2D(8, 3), layers.Flatten(), layers.Dense(512), layers.Dense(512),
                                layers.Dense(10)), BASELINE)
    with pytest.raises(CheckFailed, match=r"expected units=512, as in the baseline. Received: units=64"):
        check_keeps_layers(_mlp(layers.Flatten(), layers.Dense(64), layers.Dense(10)), BASELINE)  # shrunk, not regularized
    with pytest.raises(CheckFailed, match=r"Dense\(units=10\) is missing"):
        check_keeps_layers(_mlp(layers.Flatten(), layers.Dense(512), layers.Dense(512)), BASELINE)
    with pytest.raises(CheckFailed, match="expected only the baseline's 3 Dense layers. Received: 4"):
        check_keeps_layers(_mlp(layers.Flatten(), layers.Dense(512), layers.Dense(512), layers.Dense(10),
                                layers.Dense(10)), BASELINE)


def test_gap_check_reads_the_graders_numbers():
    def trained(train, test):
        return Training(test_accuracy=test, train_accuracy=train, train_size=2000, epochs=40, seconds=1.0, evaluate_seconds=0.1,
                        compiled_by="course", final_loss=0.1, epochs_run=40)

    assert check_gap(trained(0.90, 0.82), 0.11).startswith("gap 0.0800 <= 0.110")
    with pytest.raises(CheckFailed, match="Received: 0.1500"):
        check_gap(trained(0.97, 0.82), 0.11)
    with pytest.raises(CheckFailed, match="No gap threshold"):
        check_gap(trained(0.9, 0.8), None)
    # A model that cannot learn (compiled with learning_rate=0.0) has no gap, and earns no gap points.
    with pytest.raises(CheckFailed, match=r"^The model did not learn: expected a train accuracy of at least 0.50"):
        check_gap(trained(0.11, 0.10), 0.11)


def test_parse_options():
    assert parse_options(None) == FitOptions() == parse_options({})
    options = parse_options({"validation_split": 0.25, "early_stopping": {"monitor": "val_accuracy", "patience": 5}})
    assert options.early_stopping.restore_best_weights is True and options.validation_split == 0.25
    with pytest.raises(StudentCodeError, match=r"validation_split: expected input should be less than or equal to 0.5. "
                                               r"Received: 0.9."):
        parse_options({"validation_split": 0.9})
    with pytest.raises(StudentCodeError, match=r"epochs: unknown key 'epochs'. Expected one of: early_stopping, "
                                               r"validation_split."):
        parse_options({"epochs": 500})  # the budget is the grader's, never the notebook's
    assert parse_options({"early_stopping": {"monitor": "loss"}}).validation_split == 0.0
