"""Labels follow the student's loss, and the metrics follow the labels (issue 22).

The grader's labels are class indices 0..9. A model compiled with a loss that compares its 10 scores with a target
of the same shape (categorical cross-entropy, KL divergence, mean squared error, ...) is trained and evaluated on
one-hot labels, a sparse loss on the indices, and a loss that cannot train a classifier (CTC, Circle) is refused
before any training, with a message the student can act on. Every spelling of the accuracy metric reports
``accuracy`` and ``val_accuracy``. Real Keras objects, tiny models; one short training on real Fashion-MNIST.
"""

import inspect
import re

import keras
import numpy as np
import pytest
from keras import layers

from deepgrade.course import Compile, Profile
from deepgrade.errors import StudentCodeError
from deepgrade.grader import load_model, train_and_evaluate
from deepgrade.grader.labels import (
    ONE_HOT,
    SPARSE,
    follow_labels,
    history_key,
    label_form,
    loss_table,
    metric_names,
    probe,
)
from deepgrade.grader.training import _canonical, _fresh_copy, _wants_one_hot
from deepgrade.protocol import FitOptions

L, M = keras.losses, keras.metrics
pytestmark = pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")  # saved before a fit
REFUSED = "refused"

# Every loss keras.losses exposes (Keras 3.15), and the string aliases keras.losses.get accepts, with the labels
# the grader trains it on. Element-wise losses compare the one-hot row with the 10 scores (one-vs-rest).
EXPOSED = {
    "sparse_categorical_crossentropy": SPARSE, "SparseCategoricalCrossentropy": SPARSE,
    "CategoricalGeneralizedCrossEntropy": SPARSE,  # one-hot encodes the class indices itself
    "categorical_generalized_cross_entropy": REFUSED,  # the bare function needs q, which compile() cannot pass
    "categorical_crossentropy": ONE_HOT, "CategoricalCrossentropy": ONE_HOT,
    "categorical_focal_crossentropy": ONE_HOT, "CategoricalFocalCrossentropy": ONE_HOT,
    "categorical_hinge": ONE_HOT, "CategoricalHinge": ONE_HOT,
    "kl_divergence": ONE_HOT, "KLDivergence": ONE_HOT,
    "binary_crossentropy": ONE_HOT, "BinaryCrossentropy": ONE_HOT,
    "binary_focal_crossentropy": ONE_HOT, "BinaryFocalCrossentropy": ONE_HOT,
    "hinge": ONE_HOT, "Hinge": ONE_HOT, "squared_hinge": ONE_HOT, "SquaredHinge": ONE_HOT,
    "mean_squared_error": ONE_HOT, "MeanSquaredError": ONE_HOT,
    "mean_absolute_error": ONE_HOT, "MeanAbsoluteError": ONE_HOT,
    "mean_absolute_percentage_error": ONE_HOT, "MeanAbsolutePercentageError": ONE_HOT,
    "mean_squared_logarithmic_error": ONE_HOT, "MeanSquaredLogarithmicError": ONE_HOT,
    "huber": ONE_HOT, "Huber": ONE_HOT, "log_cosh": ONE_HOT, "LogCosh": ONE_HOT,
    "poisson": ONE_HOT, "Poisson": ONE_HOT, "cosine_similarity": ONE_HOT, "CosineSimilarity": ONE_HOT,
    "dice": ONE_HOT, "Dice": ONE_HOT, "tversky": ONE_HOT, "Tversky": ONE_HOT,
    "ctc": REFUSED, "CTC": REFUSED, "circle": REFUSED, "Circle": REFUSED,
    "Loss": REFUSED,  # the abstract base class
}
ALIASES = {"mse": ONE_HOT, "MSE": ONE_HOT, "mae": ONE_HOT, "MAE": ONE_HOT, "mape": ONE_HOT, "MAPE": ONE_HOT,
           "msle": ONE_HOT, "MSLE": ONE_HOT, "kld": ONE_HOT, "KLD": ONE_HOT, "bce": ONE_HOT, "BCE": ONE_HOT,
           "crossentropy": SPARSE, "ce": SPARSE}  # Keras picks the cross-entropy by the labels: sparse for indices
NOT_LOSSES = {"get", "serialize", "deserialize"}


def small(name="out"):
    return keras.Sequential([keras.Input((28, 28, 1)), layers.Flatten(), layers.Dense(16, activation="relu"),
                             layers.Dense(10, activation="softmax", name=name)])


def compiled(loss, metrics=None, model=None):
    model = model or small()
    model.compile(optimizer="adam", loss=loss, metrics=metrics)
    return model


def form_of(model) -> str:
    """The labels the grader trains ``model`` (as the grader gets it) with, or REFUSED."""
    try:
        fresh, _ = _fresh_copy(model, Compile())
    except StudentCodeError:
        return REFUSED
    return label_form(fresh)


def saved(model, tmp_path):
    """``model`` through its .keras file, as the grader loads it (safe_mode)."""
    path = tmp_path / "m.keras"
    model.save(path)
    return load_model(path)


# -- the table covers every loss, and agrees with the losses themselves -----------------------------------

def test_every_loss_keras_exposes_is_decided():
    exposed = {name for name, value in vars(L).items() if not name.startswith("_") and callable(value)} - NOT_LOSSES
    assert exposed - {"LossFunctionWrapper"} == set(EXPOSED), "a Keras upgrade added or removed a loss: decide it"
    functions = {value for value in vars(L).values() if inspect.isfunction(value)} - {L.get, L.serialize,
                                                                                        L.deserialize}
    assert functions == set(loss_table()), "every loss function of keras.losses is in the grader's table"



def stable_id(value) -> str:
    """A test id that is the same in every process (pytest-xdist compares them): a repr without addresses."""
    return re.sub(r" at 0x[0-9a-f]+", "", repr(value))


@pytest.mark.parametrize("name", sorted(EXPOSED))
def test_each_exposed_loss_as_an_object(name):
    """keras.losses.<function> and keras.losses.<Class>() in compile()."""
    value = getattr(L, name)
    assert form_of(compiled(value() if inspect.isclass(value) else value)) == EXPOSED[name]


@pytest.mark.parametrize("name", sorted([*EXPOSED, *ALIASES]))
def test_each_loss_as_a_string(name):
    """loss='<name>': the names keras.losses.get resolves (and compile's own 'crossentropy' and 'ce'); a name it
    does not know fails as fit would."""
    try:
        if name not in ("crossentropy", "ce"):
            L.get(name)
    except ValueError:
        assert name in ("categorical_generalized_cross_entropy", "CategoricalGeneralizedCrossEntropy")
        return  # not a name Keras knows: fit's own error, in the grader's training message
    assert form_of(compiled(name)) == {**EXPOSED, **ALIASES}[name]


@pytest.mark.parametrize("name", sorted(name for name, form in EXPOSED.items() if form != REFUSED))
def test_the_table_agrees_with_what_each_loss_computes(name):
    """Each loss called on a batch of each kind of label: the kind the table says is the one it takes."""
    value = getattr(L, name)
    loss = value() if inspect.isclass(value) else value
    assert probe(loss) == EXPOSED[name]


def test_probe_refuses_a_loss_that_takes_neither():
    assert probe(L.ctc) == ""


# -- the spellings a student writes, through the .keras file ---------------------------------------------

CATEGORICAL = [
    "categorical_crossentropy", "CategoricalCrossentropy", L.categorical_crossentropy,
    L.CategoricalCrossentropy(label_smoothing=0.1), L.CategoricalCrossentropy(from_logits=True),
    L.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2), ["categorical_crossentropy"],
    {"out": "categorical_crossentropy"}, [L.CategoricalCrossentropy(label_smoothing=0.1)], "kld", "mse",
    L.CategoricalFocalCrossentropy(), "categorical_hinge", "binary_crossentropy",
]
SPARSE_SPELLINGS = [
    "sparse_categorical_crossentropy", "SparseCategoricalCrossentropy", L.sparse_categorical_crossentropy,
    L.SparseCategoricalCrossentropy(from_logits=True), ["sparse_categorical_crossentropy"],
    {"out": L.SparseCategoricalCrossentropy()}, "crossentropy", L.CategoricalGeneralizedCrossEntropy(q=0.5),
]


@pytest.mark.parametrize("loss", CATEGORICAL, ids=stable_id)
def test_a_categorical_loss_gets_one_hot_labels(loss, tmp_path):
    model = saved(compiled(loss, ["accuracy"]), tmp_path)
    fresh, by = _fresh_copy(model, Compile())
    assert by == "student" and label_form(fresh) == ONE_HOT and _wants_one_hot(fresh)


@pytest.mark.parametrize("loss", SPARSE_SPELLINGS, ids=stable_id)
def test_a_sparse_loss_gets_class_indices(loss, tmp_path):
    model = saved(compiled(loss, ["accuracy"]), tmp_path)
    fresh, _ = _fresh_copy(model, Compile())
    assert label_form(fresh) == SPARSE and not _wants_one_hot(fresh)


def test_an_uncompiled_model_gets_the_course_defaults_labels():
    fresh, by = _fresh_copy(small(), Compile())
    assert by == "course" and label_form(fresh) == SPARSE
    fresh, by = _fresh_copy(small(), Compile(loss="categorical_crossentropy", metrics=["acc"]))
    assert by == "course" and label_form(fresh) == ONE_HOT and metric_names(fresh) == ["accuracy"]


# -- refused losses: said before any training --------------------------------------------------------------

EXPECTED = ("Expected a classification loss, one that takes class indices (e.g. 'sparse_categorical_crossentropy') "
            "or one-hot labels (e.g. 'categorical_crossentropy')")
FIX = "Compile with loss='sparse_categorical_crossentropy', or leave the model uncompiled to use the course defaults."


def refusal(model) -> str:
    with pytest.raises(StudentCodeError) as info:
        _fresh_copy(model, Compile())
    return str(info.value)


def test_ctc_is_refused_with_what_to_do(tmp_path):
    assert refusal(saved(compiled("ctc"), tmp_path)) == (
        f"{EXPECTED}. Received: loss='ctc' (CTC scores label sequences against per-time-step outputs, not one "
        f"class per image). {FIX}")


def test_circle_is_refused_with_its_settings():
    assert refusal(compiled(L.Circle(gamma=2.0))) == (
        f"{EXPECTED}. Received: loss=keras.losses.Circle(gamma=2.0) (Circle is a metric-learning loss: it pulls "
        f"together the outputs of images of the same class and trains no class scores). {FIX}")


def test_the_base_class_and_a_function_that_needs_arguments_are_refused():
    assert refusal(compiled(L.Loss())) == (
        f"{EXPECTED}. Received: loss=keras.losses.Loss() (keras.losses.Loss is the base class of the losses and "
        f"computes nothing itself). {FIX}")
    assert refusal(compiled(L.categorical_generalized_cross_entropy)) == (
        f"{EXPECTED}. Received: loss=keras.losses.categorical_generalized_cross_entropy (the function needs its q "
        f"argument, which compile() cannot pass: use keras.losses.CategoricalGeneralizedCrossEntropy(q=0.5)). {FIX}")


def test_losses_that_disagree_on_the_labels_are_refused():
    assert refusal(compiled(["mse", "sparse_categorical_crossentropy"])) == (
        f"{EXPECTED}: every loss of the model must take the same labels, and the grader trains a model with one "
        "output. Received: loss='mse' (one-hot labels), 'sparse_categorical_crossentropy' (class indices). "
        f"{FIX}")


def test_a_refused_loss_never_starts_training(tmp_path):
    """The refusal is the grade's message, not wrapped in "Training failed"."""
    with pytest.raises(StudentCodeError, match=r"^Expected a classification loss.*Received: loss='circle'"):
        train_and_evaluate(saved(compiled("circle"), tmp_path), Profile(train_size=100, epochs=1), Compile(), 1)


# -- metrics follow the labels; the accuracy is "accuracy" ---------------------------------------------------

ACCURACY_SPELLINGS = [["acc"], ["accuracy"], ["Accuracy"], ["categorical_accuracy"], ["sparse_categorical_accuracy"],
                      [M.SparseCategoricalAccuracy()], [M.CategoricalAccuracy(name="my_acc")],
                      [M.sparse_categorical_accuracy], ["acc", "accuracy"], {"out": ["acc"]}, [M.Accuracy()]]


@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy", L.CategoricalCrossentropy(label_smoothing=0.1)],
                         ids=["sparse", "categorical"])
@pytest.mark.parametrize("metrics", ACCURACY_SPELLINGS, ids=stable_id)
def test_every_accuracy_spelling_reports_accuracy(loss, metrics):
    fresh, _ = _fresh_copy(compiled(loss, metrics), Compile())
    assert metric_names(fresh) == ["accuracy"]


@pytest.mark.parametrize("metrics", [["acc"], ["sparse_categorical_accuracy"], [M.SparseCategoricalAccuracy()],
                                     ["categorical_accuracy"], [], None], ids=stable_id)
@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy", "categorical_crossentropy"])
def test_a_short_fit_reports_the_accuracy_under_its_name(loss, metrics):
    """The metric matches the labels: its value is the accuracy of the model's argmax."""
    fresh, _ = _fresh_copy(compiled(loss, metrics), Compile())
    x = np.random.default_rng(0).random((64, 28, 28, 1), "float32")
    y = np.arange(64) % 10
    target = np.eye(10, dtype="float32")[y] if _wants_one_hot(fresh) else y
    history = fresh.fit(x, target, epochs=1, batch_size=32, verbose=0, validation_data=(x, target)).history
    assert set(history) == ({"loss", "val_loss"} | ({"accuracy", "val_accuracy"} if metrics else set()))
    if metrics:
        measured = fresh.evaluate(x, target, batch_size=64, verbose=0, return_dict=True)["accuracy"]
        argmax = np.argmax(fresh.predict(x, batch_size=64, verbose=0), axis=-1)
        assert measured == pytest.approx(np.mean(argmax == y), abs=1e-6)


def test_other_metrics_take_the_labels_of_the_loss():
    top_k = keras.metrics.serialize(M.SparseTopKCategoricalAccuracy(k=3))
    assert follow_labels(["sparse_categorical_accuracy", top_k, "mse"], ONE_HOT) == [
        "accuracy",
        {"module": "keras.metrics", "class_name": "TopKCategoricalAccuracy",
         "config": {"name": "sparse_top_k_categorical_accuracy", "dtype": "float32", "k": 3}, "registered_name": None},
        "mse"]
    assert follow_labels(["top_k_categorical_accuracy"], SPARSE)[0]["class_name"] == "SparseTopKCategoricalAccuracy"
    crossentropy = follow_labels([keras.metrics.serialize(M.categorical_crossentropy)], SPARSE)[0]
    assert crossentropy["class_name"] == "SparseCategoricalCrossentropy"
    assert crossentropy["config"]["name"] == "categorical_crossentropy"  # the history key the student chose
    assert follow_labels(["acc"], SPARSE) == follow_labels(["accuracy"], ONE_HOT) == ["accuracy"]
    assert follow_labels(None, SPARSE) is None and follow_labels([], ONE_HOT) == []
    assert follow_labels(["acc"], ONE_HOT, canonical=False) == ["acc"]


def test_history_keys_of_any_spelling_are_the_graders():
    assert [history_key(k) for k in ("acc", "val_acc", "sparse_categorical_accuracy", "val_categorical_accuracy",
                                     "loss", "val_loss", "mse")] == [
        "accuracy", "val_accuracy", "accuracy", "val_accuracy", "loss", "val_loss", "mse"]
    assert _canonical({"loss": [1.0], "acc": [0.5], "val_acc": [0.4]}) == {
        "loss": [1.0], "accuracy": [0.5], "val_accuracy": [0.4]}
    assert _canonical({"accuracy": [0.5], "acc": [0.6]}) == {"accuracy": [0.5], "acc": [0.6]}  # never overwritten


def test_progress_shows_the_accuracy_however_it_is_spelled(monkeypatch):
    from deepgrade.grader import progress

    seen = []
    monkeypatch.setattr(progress, "sink", seen.append)
    progress.epochs_callback(3).on_epoch_end(0, {"loss": 1.0, "acc": 0.5, "val_acc": 0.4, "val_loss": 1.2})
    assert seen[0].metrics == {"loss": 1.0, "accuracy": 0.5, "val_accuracy": 0.4, "val_loss": 1.2}


# -- real training on Fashion-MNIST ---------------------------------------------------------------------------

SHORT = Profile(train_size=600, epochs=4, batch_size=32)


def test_label_smoothing_trains_to_a_sane_accuracy_with_acc(tmp_path):
    model = compiled(L.CategoricalCrossentropy(label_smoothing=0.1),
                     ["acc", M.SparseCategoricalAccuracy(), "sparse_top_k_categorical_accuracy"])
    result = train_and_evaluate(saved(model, tmp_path), SHORT, Compile(), seed=1,
                                options=FitOptions.model_validate(
                                    {"validation_split": 0.2, "early_stopping": {"monitor": "val_accuracy",
                                                                                 "patience": 2}}))
    assert result.compiled_by == "student"
    assert 0.6 < result.test_accuracy <= 1.0 and result.train_accuracy > 0.6
    assert set(result.history) == {"loss", "accuracy", "sparse_top_k_categorical_accuracy", "val_loss",
                                   "val_accuracy", "val_sparse_top_k_categorical_accuracy"}
    assert all(0.0 <= v <= 1.0 for v in result.history["val_accuracy"])
    assert result.history["accuracy"][-1] > 0.5  # measured on one-hot labels: a real accuracy, not a broadcast


def test_early_stopping_on_an_accuracy_no_metric_reports_is_said_before_training(tmp_path):
    model = compiled("categorical_crossentropy", [])
    options = FitOptions.model_validate({"validation_split": 0.2, "early_stopping": {"monitor": "val_accuracy"}})
    with pytest.raises(StudentCodeError) as info:
        train_and_evaluate(saved(model, tmp_path), SHORT, Compile(), seed=1, options=options)
    assert str(info.value) == (
        "Early stopping monitors 'val_accuracy', which training did not report: expected one of ['loss', "
        "'val_loss']. Monitor 'val_loss', or compile with metrics=['accuracy'].")
