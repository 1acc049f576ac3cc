"""Loading a student's ``.keras`` file: its config checked first, then ``safe_mode`` loading, then its I/O."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import StudentCodeError, first_line, said
from ..habits import MODEL_HABITS, hint_for
from ..protocol import inspect_archive

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10


def load_model(path: Path):
    """Load a student's ``.keras`` file with ``safe_mode=True``."""
    import keras

    inspect_archive(path)
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=True)
    except Exception as exc:  # noqa: BLE001 - any load failure is reported, never executed further
        hint = hint_for(exc, only=MODEL_HABITS)
        raise StudentCodeError(
            f"The grader could not load the model in safe mode ({said(exc)}).{' ' + hint if hint else ''}"
        ) from None
    if not isinstance(model, keras.Model):
        raise StudentCodeError(f"Expected a Keras model in the file. Received: {type(model).__name__}.")
    return model


def check_io(model, num_classes: int = NUM_CLASSES) -> None:
    """The model must take a batch of 28x28x1 images and give one score per class."""
    from keras import ops

    try:
        out = model(np.zeros((2, *INPUT_SHAPE), "float32"), training=False)
    except Exception as exc:  # noqa: BLE001
        hint = hint_for(exc, only=MODEL_HABITS)  # e.g. Dense(256, input_shape=(784,)) without Flatten
        raise StudentCodeError(
            f"The model does not accept a batch of 28x28x1 images: expected input shape (None, 28, 28, 1) "
            f"({type(exc).__name__}: {first_line(exc)}).{' ' + hint if hint else ''}"
        ) from None
    shape = tuple(ops.shape(out))
    if shape != (2, num_classes):
        raise StudentCodeError(
            f"Expected output shape (None, {num_classes}): one score per class. "
            f"Received: (None, {', '.join(str(s) for s in shape[1:])})."
        )
