"""The trusted grader's side of the boundary: load the student's ``.keras`` file safely, train, evaluate.

Every number in a grade is computed here, from the model file alone, with the
Keras 3 API (``keras.ops``), so the same code runs on the TensorFlow, JAX or
PyTorch backend.
"""

from __future__ import annotations

import json
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .config import Compile, Profile
from .errors import StudentCodeError

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10

_ALLOWED_MODULE_PREFIXES = ("keras",)


def _walk(node: Any) -> Iterator[dict]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def inspect_archive(path: Path) -> dict:
    """Read config.json from the archive and refuse anything that is not a built-in Keras object.

    Runs before Keras deserializes anything, so a Lambda layer or custom class
    is refused without being imported or executed.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise StudentCodeError(f"The saved model is not a valid .keras file ({type(exc).__name__}: {exc}).") from None
    for node in _walk(config):
        name = node.get("class_name")
        if name is None or "module" not in node:
            continue
        if name in ("Lambda", "TFSMLayer"):
            raise StudentCodeError(
                f"The model contains a {name} layer; it runs arbitrary code, so the grader refuses it "
                "(safe_mode). Use built-in Keras layers instead (e.g. Rescaling, Reshape, Activation)."
            )
        module = node.get("module") or ""
        registered = node.get("registered_name")
        custom = registered is not None and registered != name  # built-in Keras objects carry none
        if custom or (module and not module.startswith(_ALLOWED_MODULE_PREFIXES) and module != "builtins"):
            raise StudentCodeError(
                f"The model uses {name!r} from {(registered if custom else module)!r}, "
                "which is not a built-in Keras object; "
                "the grader only loads built-in Keras layers, losses and optimizers (safe_mode). "
                "Rewrite it with layers from keras.layers."
            )
    return config


def load_model(path: Path):
    """Load a student's ``.keras`` file with ``safe_mode=True``."""
    import keras

    inspect_archive(path)
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=True)
    except Exception as exc:  # noqa: BLE001 - any load failure is reported, never executed further
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise StudentCodeError(
            f"The grader could not load the model in safe mode ({type(exc).__name__}: {first[:300]})."
        ) from None
    if not isinstance(model, keras.Model):
        raise StudentCodeError(f"Expected a Keras model in the file. Received: {type(model).__name__}.")
    return model


def check_io(model) -> None:
    """The model must take a batch of 28x28x1 images and give one score per class."""
    from keras import ops

    try:
        out = model(np.zeros((2, *INPUT_SHAPE), "float32"), training=False)
    except Exception as exc:  # noqa: BLE001
        raise StudentCodeError(
            f"The model does not accept a batch of 28x28x1 images: expected input shape (None, 28, 28, 1) "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})."
        ) from None
    shape = tuple(ops.shape(out))
    if shape != (2, NUM_CLASSES):
        raise StudentCodeError(
            f"Expected output shape (None, {NUM_CLASSES}): one score per class. "
            f"Received: (None, {', '.join(str(s) for s in shape[1:])})."
        )


@dataclass(frozen=True)
class Training:
    test_accuracy: float
    train_accuracy: float
    train_size: int
    epochs: int
    seconds: float
    compiled_by: str  # "student" or "course"
    final_loss: float


def _fresh_copy(model, defaults: Compile):
    """Same architecture and compile settings, weights re-initialised from the grader's seed."""
    import keras

    fresh = keras.models.clone_model(model)
    compile_config = model.get_compile_config() if getattr(model, "compiled", False) else None
    if compile_config:
        fresh.compile_from_config(compile_config)
        return fresh, "student"
    optimizer = keras.optimizers.get(defaults.optimizer)
    if defaults.learning_rate is not None:
        optimizer.learning_rate = defaults.learning_rate
    fresh.compile(optimizer=optimizer, loss=defaults.loss, metrics=list(defaults.metrics))
    return fresh, "course"


def _wants_one_hot(model) -> bool:
    loss = model.loss
    name = loss if isinstance(loss, str) else getattr(loss, "name", type(loss).__name__)
    name = str(name).lower()
    return "categorical" in name and "sparse" not in name


def accuracy(model, x: np.ndarray, y: np.ndarray, batch_size: int = 1024) -> float:
    """Fraction of ``x`` whose highest-scoring class is ``y``, computed here, never read from logs."""
    from keras import ops

    scores = model.predict(x, batch_size=batch_size, verbose=0)
    predicted = ops.convert_to_numpy(ops.argmax(scores, axis=-1))
    return float(np.mean(predicted == y))


def seed_everything(seed: int) -> None:
    import keras

    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def train_and_evaluate(model, profile: Profile, defaults: Compile, seed: int) -> Training:
    """Train a fresh copy of ``model`` under ``profile`` with ``seed``; measure accuracy on the test set."""
    from . import data

    seed_everything(seed)
    train, test = data.load()
    rng = np.random.default_rng(seed)
    size = profile.train_size or len(train)
    index = np.sort(rng.permutation(len(train))[:size])
    x, y = train.x[index], train.y[index]

    fresh, compiled_by = _fresh_copy(model, defaults)
    targets = np.eye(NUM_CLASSES, dtype="float32")[y] if _wants_one_hot(fresh) else y
    start = time.monotonic()
    try:
        history = fresh.fit(x, targets, epochs=profile.epochs, batch_size=profile.batch_size, shuffle=True, verbose=0)
    except Exception as exc:  # noqa: BLE001 - a student's compile settings can make fit fail
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise StudentCodeError(
            f"Training failed with the model's compile settings ({type(exc).__name__}: {first[:300]}). "
            "Compile with loss='sparse_categorical_crossentropy' for integer labels, or leave the model "
            "uncompiled to use the course defaults."
        ) from None
    seconds = time.monotonic() - start
    losses = history.history.get("loss", [float("nan")])
    return Training(
        test_accuracy=accuracy(fresh, test.x, test.y),
        train_accuracy=accuracy(fresh, x, y),
        train_size=size,
        epochs=profile.epochs,
        seconds=seconds,
        compiled_by=compiled_by,
        final_loss=float(losses[-1]),
    )
