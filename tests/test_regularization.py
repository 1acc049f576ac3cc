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


def test_unregularized_baseline_fails_the_gap_check_on_what_it_is(graded):
    """The baseline as given reaches the gap threshold on about 1 training in 200 (docs/calibration.md): its gap
    earns nothing whatever the seed, and that failure is structural, so it is never trained a second time."""
    report = graded("regularization", "overfit")
    checks = by_name(report)
    assert checks["keeps_baseline"].passed
    assert not checks["gap"].passed and not checks["gap"].trains
    assert checks["gap"].message.startswith("Expected some regularization added to the baseline before its gap earns "
                                            "points. Received: the baseline as given: no dropout")
    assert "its gap in this training: 0." in checks["gap"].message and "Add dropout" in checks["gap"].message
    assert "retry" not in report.environment  # a structural failure: no second training for any check


def test_the_gap_names_what_regularizes_the_model(graded):
    gap = by_name(graded("regularization", "solution"))["gap"]
    assert gap.passed and gap.trains and "regularized by Dropout(rate=" in gap.message
    early = by_name(graded("regularization", "early_stopping"))["gap"]
    assert "early stopping on val_loss (patience 2) in fit_options()" in early.message


def _mlp(*middle):
    import keras

    return keras.Sequential([keras.Input((28, 28, 1)), *middle])


def _baseline(*extra, penalty=None, constraint=None):
    from keras import layers

    return _mlp(layers.Flatten(), *extra, layers.Dense(512, activation="relu", kernel_regularizer=penalty,
                                                       kernel_constraint=constraint),
                layers.Dense(512, activation="relu"), layers.Dense(10, activation="softmax"))


def test_every_form_of_regularization_counts_and_settings_that_do_nothing_do_not():
    """Generous by design: a correct student's regularization must never read as none (any added layer that is
    not a reshaping one counts, even of a kind this list does not name); only the baseline as given, or with
    settings that do nothing, reads as none."""
    import keras
    from keras import constraints, layers, regularizers

    from deepgrade.grader import regularization_of

    forms = {
        "Dropout(rate=0.5)": _baseline(layers.Dropout(0.5)),
        "GaussianNoise(stddev=0.1)": _baseline(layers.GaussianNoise(0.1)),
        "GaussianDropout(rate=0.2)": _baseline(layers.GaussianDropout(0.2)),
        "AlphaDropout(rate=0.1)": _baseline(layers.AlphaDropout(0.1)),
        "BatchNormalization()": _baseline(layers.BatchNormalization()),
        "LayerNormalization()": _baseline(layers.LayerNormalization()),
        "UnitNormalization()": _baseline(layers.UnitNormalization()),  # a kind no list here names
        "ActivityRegularization(l1=0.0, l2=0.01)": _baseline(layers.ActivityRegularization(l2=0.01)),
        "kernel_regularizer=L2 on layer 2 (Dense)": _baseline(penalty=regularizers.l2(1e-4)),
        "kernel_regularizer=L1L2 on layer 2 (Dense)": _baseline(penalty=regularizers.l1_l2(l1=1e-5)),
        "kernel_constraint=MaxNorm on layer 2 (Dense)": _baseline(constraint=constraints.MaxNorm(3)),
    }
    augment = _mlp(layers.RandomFlip("horizontal"), layers.RandomTranslation(0.1, 0.1), layers.Flatten(),
                   layers.Dense(512, activation="relu"), layers.Dense(512, activation="relu"), layers.Dense(10))
    for said, model in forms.items():
        assert any(said in found for found in regularization_of(model)), (said, regularization_of(model))
    found = regularization_of(augment)
    assert found[0].startswith("RandomFlip() (layer 1)") and "RandomTranslation(height_factor=0.1" in found[1]
    activity = _mlp(layers.Flatten(), layers.Dense(512, activation="relu", activity_regularizer="l2"), layers.Dense(10))
    assert "activity_regularizer=L2 on layer 2 (Dense)" in regularization_of(activity)

    compiled = _baseline()
    compiled.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="sparse_categorical_crossentropy")
    assert regularization_of(compiled) == ["AdamW(weight_decay=0.004)"]
    compiled.compile(optimizer=keras.optimizers.Adam(1e-3, weight_decay=1e-4), loss="sparse_categorical_crossentropy")
    assert regularization_of(compiled) == ["Adam(weight_decay=0.0001)"]
    compiled.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1))
    assert regularization_of(compiled) == ["CategoricalCrossentropy(label_smoothing=0.1)"]
    compiled.compile(optimizer=keras.optimizers.Adam(use_ema=True), loss="sparse_categorical_crossentropy")
    assert regularization_of(compiled) == ["Adam(use_ema=True)"]
    options = parse_options({"validation_split": 0.2, "early_stopping": {"monitor": "val_accuracy", "patience": 4}})
    assert regularization_of(_baseline(), options) == ["early stopping on val_accuracy (patience 4) in fit_options()"]

    # spellings read from a saved compile config: a loss given as a function, a loss per output, a wrapped optimizer
    compiled.compile(optimizer="adam", loss=keras.losses.sparse_categorical_crossentropy)
    assert regularization_of(compiled) == []  # not a crash: 'config' is a string there
    compiled.compile(optimizer=keras.optimizers.LossScaleOptimizer(keras.optimizers.AdamW()),
                     loss=[keras.losses.CategoricalCrossentropy(label_smoothing=0.1)])
    assert regularization_of(compiled) == ["AdamW(weight_decay=0.004)", "CategoricalCrossentropy(label_smoothing=0.1)"]
    stopping = parse_options({"early_stopping": {"monitor": "loss", "patience": 40, "restore_best_weights": False}})
    assert regularization_of(_baseline(), stopping, epochs=40) == []  # can never stop within the 40 epochs
    assert regularization_of(_baseline(), stopping, epochs=41) != []

    class Unreadable:  # whatever goes wrong reading a model, it is never "nothing"
        layers = property(lambda self: 1 / 0)

    assert regularization_of(Unreadable()) == ["settings the grader could not read (ZeroDivisionError)"]

    nothing = [
        _baseline(),
        _baseline(constraint=constraints.Constraint()), _baseline(constraint=constraints.MinMaxNorm(0, 1, rate=0.0)),
        _baseline(layers.BatchNormalization(trainable=False), layers.RandomErasing(scale=(0, 0)),
                  layers.RandomGaussianBlur(kernel_size=1)),
        _baseline(layers.Dropout(0.0), layers.GaussianNoise(0.0), layers.Activation("linear"), layers.Identity()),
        _baseline(penalty=regularizers.l2(0.0)),
        _baseline(layers.ActivityRegularization(l1=0.0, l2=0.0), layers.RandomRotation(0.0)),
    ]
    plain = _baseline()
    plain.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.0))
    nothing.append(plain)
    ema = _baseline()
    ema.compile(optimizer=keras.optimizers.Adam(use_ema=True, ema_momentum=0.0, weight_decay=-1e-3), loss="mse")
    nothing.append(ema)
    for model in nothing:
        assert regularization_of(model) == [], regularization_of(model)
    assert regularization_of(_baseline(), parse_options({"validation_split": 0.2})) == []  # held out, not stopped


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
    # The gate: the baseline as given (nothing found) fails on what it is, even on a seed whose gap is small.
    with pytest.raises(CheckFailed, match=r"^Expected some regularization added.*its gap in this training: 0.0800") as lucky:
        check_gap(trained(0.90, 0.82), 0.11, regularization=[])
    assert lucky.value.structural
    with pytest.raises(CheckFailed) as over:
        check_gap(trained(0.97, 0.82), 0.11, regularization=["Dropout(rate=0.5) (layer 2)"])
    assert not over.value.structural  # a regularized model that still over-fits: a training's result
    assert "regularized by Dropout(rate=0.5) (layer 2)). Make it stronger or add more: dropout, an L2" in str(over.value)
    many = [f"Dropout(rate=0.{i}) (layer {i})" for i in range(1, 7)]
    assert check_gap(trained(0.90, 0.82), 0.11, regularization=many).endswith(
        "regularized by Dropout(rate=0.1) (layer 1), Dropout(rate=0.2) (layer 2), Dropout(rate=0.3) (layer 3), "
        "Dropout(rate=0.4) (layer 4), 2 more).")


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
