"""Training and evaluation: a fresh copy of the student's model trained under the grader's seed and budget.

Every number in a grade is computed here, from the model file alone, with the
Keras 3 API (``keras.ops``), so the same code runs on the TensorFlow, JAX or
PyTorch backend (``tf`` only for op determinism on TensorFlow).
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..course import Compile, Profile
from ..errors import DeepgradeError, StudentCodeError, first_line
from ..protocol import FitOptions
from .labels import follow_labels, history_key, label_form, metric_names, wants_one_hot
from .labels import targets as label_targets
from .loading import NUM_CLASSES


@dataclass(frozen=True)
class Task:
    """What the grader trains and tests on: all ten classes, or a few relabelled 0..k-1 with k images each."""

    classes: tuple[int, ...] = tuple(range(NUM_CLASSES))
    images_per_class: int | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @classmethod
    def of(cls, exercise) -> "Task":
        t = exercise.transfer
        return cls(tuple(t.classes), t.images_per_class) if t is not None else cls()


@dataclass(frozen=True)
class Training:
    test_accuracy: float
    train_accuracy: float
    train_size: int
    epochs: int
    seconds: float                 # training (fit)
    evaluate_seconds: float        # the accuracies on the test and training sets
    compiled_by: str  # "student" or "course"
    final_loss: float
    epochs_run: int = 0  # fewer than epochs when early stopping stopped it
    validation_size: int = 0
    warmup_epochs: int = 0  # of ``epochs``, those that trained the head with the base frozen
    model: Any = field(default=None, repr=False, compare=False)  # the trained copy
    history: dict = field(default_factory=dict, repr=False, compare=False)  # per epoch: loss, accuracy, val_*
    confusion: Any = field(default=None, repr=False, compare=False)  # test set: true class x predicted class
    monitored_on: str = ""  # what the val_* curves were measured on
    method: str = "fit"  # "fastfit" (the compiled epoch of .fastfit) or "fit" (Keras's model.fit)

    @property
    def gap(self) -> float:
        return self.train_accuracy - self.test_accuracy

    def budget(self) -> str:
        held = f", {self.validation_size:,} more held out for validation" if self.validation_size else ""
        stopped = f" (early stopping ended it after {self.epochs_run})" if self.epochs_run and self.epochs_run < self.epochs else ""
        if self.warmup_epochs:
            return (f"trained by the grader on {self.train_size:,} images{held}: {self.warmup_epochs} epochs of the "
                    f"head with the base frozen, then {self.epochs - self.warmup_epochs} epochs of fine-tuning with "
                    f"the model's own settings{stopped}")
        return f"trained by the grader on {self.train_size:,} images{held} for {self.epochs} epochs{stopped}"


@dataclass(frozen=True)
class Warmup:
    """Fine-tuning as the Keras guide teaches it: train the new head first, with ``frozen(model)`` frozen.

    The warm-up compiles with the course defaults; then every layer gets back the trainable flag the
    student set and the model is compiled again with the student's settings (a low learning rate).
    """

    epochs: int
    frozen: Callable[[Any], Any]  # the fresh copy -> the layer to freeze during the warm-up (the base)


def _with_sublayers(layer) -> list:
    return [layer, *(inner for sub in getattr(layer, "layers", []) for inner in _with_sublayers(sub))]


def _fresh_copy(model, defaults: Compile, prepare=None):
    """Same architecture and compile settings, weights re-initialised from the grader's seed.

    ``prepare(fresh)`` runs before compiling (the transfer grader restores the pretrained base there).
    """
    import keras

    fresh = keras.models.clone_model(model)
    if prepare is not None:
        prepare(fresh)
    return fresh, _compile_like(fresh, model, defaults)


# How a training runs is the grader's, not the student's: what is learned (optimizer, loss, metrics) is kept, but
# a saved jit_compile=False (TensorFlow resolves "auto" to False for an LSTM, and JAX would then run every step
# op by op, hundreds of times slower), run_eagerly or steps_per_execution never slow a grade down.
EXECUTION = {"run_eagerly": False, "steps_per_execution": 1, "jit_compile": "auto"}


def _compile_like(fresh, model, defaults: Compile) -> str:
    """Compile ``fresh`` with ``model``'s compile settings (the grader's :data:`EXECUTION` settings), or the course
    defaults; say whose they were. The metrics follow the labels the loss takes (:func:`.labels.follow_labels`);
    StudentCodeError for a loss that cannot train a classifier (:func:`.labels.label_form`)."""
    compile_config = model.get_compile_config() if getattr(model, "compiled", False) else None
    if compile_config:
        config = {**compile_config, **EXECUTION}
        fresh.compile_from_config(config)
        _metrics_follow_labels(fresh, config.get("metrics"), config.get("weighted_metrics"),
                               lambda metrics, weighted: fresh.compile_from_config(
                                   {**config, "metrics": metrics, "weighted_metrics": weighted}))
        return "student"
    _compile_defaults(fresh, defaults)
    return "course"


def _compile_defaults(model, defaults: Compile) -> None:
    import keras

    optimizer = keras.optimizers.get(defaults.optimizer)
    if defaults.learning_rate is not None:
        optimizer.learning_rate = defaults.learning_rate

    def compile_with(metrics, weighted=None):
        model.compile(optimizer=optimizer, loss=defaults.loss, metrics=_deserialized(metrics))

    compile_with(list(defaults.metrics))
    _metrics_follow_labels(model, list(defaults.metrics), None, compile_with)


def _metrics_follow_labels(model, metrics, weighted, compile_with) -> None:
    """Compile ``model`` again (``compile_with(metrics, weighted_metrics)``) when its metrics must change to follow
    the labels its loss takes (this also refuses a loss no classifier trains with)."""
    form = label_form(model)
    followed, followed_weighted = follow_labels(metrics, form), follow_labels(weighted, form, canonical=False)
    if (followed, followed_weighted) != (metrics, weighted):
        compile_with(followed, followed_weighted)


def _deserialized(metrics):
    """A list of metric names and serialized metrics as ``compile()`` takes it."""
    import keras

    return [keras.metrics.get(m) if isinstance(m, dict) else m for m in metrics]


def _wants_one_hot(model) -> bool:
    """Whether ``model``'s compiled loss takes one-hot labels (:func:`.labels.label_form`)."""
    return wants_one_hot(model)


FASTFIT_ENV = "DEEPGRADE_FASTFIT"  # "0": plain model.fit; default: the fast path on the JAX backend


@functools.cache
def fast_path() -> bool:
    """Whether training goes through :mod:`.fastfit` (the data on the device once, compiled epochs on a GPU,
    compiled steps on a CPU): on the JAX backend, where fit's per-batch Python is most of a small model's time,
    unless ``$DEEPGRADE_FASTFIT`` is 0. Other backends train with ``model.fit``."""
    if os.environ.get(FASTFIT_ENV, "").strip() == "0":
        return False
    import keras

    return keras.backend.backend() == "jax"


def _fit(model, x, y, *, epochs: int, batch_size: int, validation_data, callbacks: list, seed: int) -> tuple[dict, str]:
    """``model.fit(x, y, shuffle=True, verbose=0, ...)``'s history, through the fast path where it is on; and
    which of the two trained ("fastfit" or "fit")."""
    if fast_path():
        from . import fastfit

        history = fastfit.fit(model, x, y, epochs=epochs, batch_size=batch_size, validation_data=validation_data,
                              callbacks=callbacks, seed=seed)
        return dict(history), history.method
    history = model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0, callbacks=callbacks,
                        validation_data=validation_data)
    return history.history, "fit"


def predicted_classes(model, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """The highest-scoring class of each image in ``x``, computed here, never read from logs."""
    from keras import ops

    if fast_path():
        from . import fastfit

        return fastfit.predict_classes(model, x, batch_size=max(batch_size, 4096))
    scores = model.predict(x, batch_size=batch_size, verbose=0)
    return ops.convert_to_numpy(ops.argmax(scores, axis=-1))


def accuracy(model, x: np.ndarray, y: np.ndarray, batch_size: int = 1024) -> float:
    """Fraction of ``x`` whose highest-scoring class is ``y``."""
    return float(np.mean(predicted_classes(model, x, batch_size) == y))


def confusion_matrix(y: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Counts of (true class, predicted class); predictions outside 0..classes-1 are dropped."""
    ok = (predicted >= 0) & (predicted < classes)
    return np.bincount(y[ok] * classes + predicted[ok], minlength=classes * classes).reshape(classes, classes)


def seed_everything(seed: int) -> None:
    import keras

    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


MONITOR_SIZE = 2000  # images the validation curves of the feedback are measured on: at most this many,
MONITOR_SHARE = 5    # and at most one for every 5 training images (measuring must not cost more than training)


def training_data(profile: Profile, seed: int, task: Task = Task(), *, monitor: bool = False):
    """The seeded training subset and the test set, both restricted to the task's classes (relabelled).

    ``monitor``: also a sample of up to :data:`MONITOR_SIZE` images (one per :data:`MONITOR_SHARE` training
    images) to draw the validation curves on (training
    images the subset left out, else test images; never used to grade) and what it is, as a 7-tuple.
    """
    from . import data

    train, test = data.load()
    rng = np.random.default_rng(seed)
    relabel = np.full(NUM_CLASSES, -1, "int64")
    relabel[list(task.classes)] = np.arange(task.num_classes)
    everything = task.images_per_class is None and task.classes == Task().classes
    if everything and (profile.train_size or len(train)) >= len(train):
        index = slice(None)  # the whole training set, in order (what the sorted permutation gives), not copied
    elif everything:
        index = np.sort(rng.permutation(len(train))[:profile.train_size])
    else:
        per_class = task.images_per_class or len(train)
        index = np.sort(np.concatenate([rng.permutation(np.flatnonzero(train.y == c))[:per_class]
                                        for c in task.classes]))
    in_test = slice(None) if everything else np.isin(test.y, task.classes)
    x, y, x_test, y_test = train.x[index], relabel[train.y[index]], test.x[in_test], relabel[test.y[in_test]]
    if not monitor:
        return x, y, x_test, y_test
    left = (np.array([], "int64") if isinstance(index, slice) else
            np.setdiff1d(np.flatnonzero(np.isin(train.y, task.classes)), index))
    pick = np.random.default_rng(seed + 2)
    size = max(1, min(MONITOR_SIZE, len(x) // MONITOR_SHARE))
    if len(left):
        chosen = np.sort(pick.permutation(left)[:size])
        x_mon, y_mon, said = train.x[chosen], relabel[train.y[chosen]], "training images the grader did not train on"
    else:
        chosen = np.sort(pick.permutation(len(x_test))[:size])
        x_mon, y_mon, said = x_test[chosen], y_test[chosen], "test images (the whole training set was used)"
    return x, y, x_test, y_test, x_mon, y_mon, f"{len(chosen):,} {said}"


def train_and_evaluate(model, profile: Profile, defaults: Compile, seed: int, *, task: Task = Task(),
                       options: FitOptions | None = None, prepare=None, warmup: Warmup | None = None,
                       what: str = "") -> Training:
    """Train a fresh copy of ``model`` under ``profile`` with ``seed``; measure accuracy on the test set.

    With ``warmup``, the profile's first ``warmup.epochs`` epochs train the head with the base frozen (see Warmup).
    ``what`` names this training in the progress it reports (a check that trains twice tells them apart).
    """
    from . import seeds as company
    from .progress import emit, epochs_callback

    done = company.trained_in_company(model, profile, defaults, seed, task, options, prepare, warmup)
    if done is not None:  # inside seeds.together(): trained beside the block's other seeds
        return done
    seed_everything(seed)
    x, y, x_test, y_test, x_mon, y_mon, monitored_on = training_data(profile, seed, task, monitor=True)
    options = options or FitOptions()
    x_val = y_val = None
    if options.validation_split:
        held = np.random.default_rng(seed + 1).permutation(len(x))
        n_val = max(1, int(round(len(x) * options.validation_split)))
        val, keep = np.sort(held[:n_val]), np.sort(held[n_val:])
        x, y, x_val, y_val = x[keep], y[keep], x[val], y[val]
        x_mon, y_mon, monitored_on = x_val, y_val, f"the {len(val):,} images fit_options() held out for validation"

    fresh, compiled_by = _fresh_copy(model, defaults, prepare)  # refuses a loss no classifier trains with
    callbacks = [_early_stopping(options.early_stopping, fresh)] if options.early_stopping else []

    def targets(labels):  # as the loss the model is compiled with now takes them (the warm-up's may differ)
        return label_targets(labels, label_form(fresh), task.num_classes)

    warm = min(warmup.epochs, profile.epochs - 1) if warmup is not None else 0
    frozen = warmup.frozen(fresh) if warm > 0 else None  # a missing base is the student's, said by find_base
    curves: dict[str, list] = {}
    start = time.monotonic()
    try:
        if frozen is not None:
            flags = [(layer, layer.trainable) for layer in _with_sublayers(frozen)]
            frozen.trainable = False
            _compile_defaults(fresh, defaults)
            first, method = _fit(fresh, x, targets(y), epochs=warm, batch_size=profile.batch_size,
                                 validation_data=(x_mon, targets(y_mon)),
                                 callbacks=[epochs_callback(profile.epochs, what=what)], seed=seed)
            _extend(curves, _canonical(first))
            for layer, flag in flags:  # outermost first: setting it re-sets its sublayers, restored after it
                layer.trainable = flag
            _compile_like(fresh, model, defaults)
        history, method = _fit(fresh, x, targets(y), epochs=profile.epochs - warm, batch_size=profile.batch_size,
                               callbacks=[*callbacks, epochs_callback(profile.epochs, warm, what)],
                               validation_data=(x_mon, targets(y_mon)), seed=seed + 3)
    except DeepgradeError:
        raise
    except Exception as exc:  # noqa: BLE001 - a student's compile settings can make fit fail
        raise StudentCodeError(
            f"Training failed with the model's compile settings ({type(exc).__name__}: {first_line(exc)}). "
            "Compile with loss='sparse_categorical_crossentropy' for integer labels, or leave the model "
            "uncompiled to use the course defaults."
        ) from None
    seconds = time.monotonic() - start
    history = _canonical(history)
    _extend(curves, history)
    if options.early_stopping and options.early_stopping.monitor not in history:
        raise _not_reported(options.early_stopping.monitor, history)
    losses = history.get("loss", [float("nan")])
    emit("evaluate", what=what)
    start = time.monotonic()
    predicted = predicted_classes(fresh, x_test)
    test_accuracy, train_accuracy = float(np.mean(predicted == y_test)), accuracy(fresh, x, y)
    return Training(
        test_accuracy=test_accuracy,
        train_accuracy=train_accuracy,
        train_size=len(x),
        epochs=profile.epochs,
        seconds=seconds,
        evaluate_seconds=time.monotonic() - start,
        compiled_by=compiled_by,
        final_loss=float(losses[-1]),
        epochs_run=warm + len(losses),
        validation_size=0 if x_val is None else len(x_val),
        warmup_epochs=warm,
        model=fresh,
        history=curves,
        confusion=confusion_matrix(y_test, predicted, task.num_classes),
        monitored_on=monitored_on,
        method=method,
    )


def _early_stopping(early, model):
    """keras.callbacks.EarlyStopping as ``early`` asks for it, on the key ``model``'s history will report for
    its monitor (``val_acc`` for 'val_accuracy' when the model's accuracy is called "acc"); StudentCodeError,
    before any training, when it reports none."""
    import keras

    monitor = early.monitor
    prefix = "val_" if monitor.startswith("val_") else ""
    names = ["loss", *metric_names(model)]
    found = next((name for name in names if history_key(name) == history_key(monitor.removeprefix(prefix))), None)
    if found is None:
        raise _not_reported(monitor, [key for name in names for key in (name, f"val_{name}")])
    return keras.callbacks.EarlyStopping(**{**early.model_dump(), "monitor": prefix + found},
                                         mode="min" if found == "loss" else "max")


def _not_reported(monitor: str, keys) -> StudentCodeError:
    return StudentCodeError(
        f"Early stopping monitors {monitor!r}, which training did not report: expected one of {sorted(keys)}. "
        "Monitor 'val_loss', or compile with metrics=['accuracy'].")


def _canonical(history: dict) -> dict:
    """``history`` with its accuracy under the grader's name, ``accuracy`` and ``val_accuracy``, however Keras
    spelled it ("acc", "sparse_categorical_accuracy", ...), unless a key already has that name."""
    renamed = dict(history)
    for key in history:
        if history_key(key) != key and history_key(key) not in renamed:
            renamed[history_key(key)] = renamed.pop(key)
    return renamed


def _extend(curves: dict[str, list], history: dict) -> None:
    """Append one fit's per-epoch metrics to ``curves`` (a warm-up's, then the rest's), epoch by epoch: a metric
    only one of the fits reports (the warm-up compiles with the course's metrics) is NaN in the other's epochs."""
    done = max((len(v) for v in curves.values()), default=0)
    epochs = max((len(v) for v in history.values()), default=0)
    for key in set(curves) | set(history):
        curves.setdefault(key, [float("nan")] * done).extend(
            float(v) for v in history.get(key, [float("nan")] * epochs))
