"""Where a grade in progress says what it is doing (:class:`deepgrade.protocol.Progress`).

The grader's process (:mod:`.serve`) points :data:`sink` at its pipe to the server for the time of one
grade; elsewhere (calibration, tests, a grade in this process) nothing listens and :func:`emit` does nothing.
"""

from __future__ import annotations

from collections.abc import Callable

sink: Callable | None = None


def emit(stage: str, **fields) -> None:
    """Say that the grade is at ``stage`` (``epoch``, ``epochs``, ``what``, ``metrics``); never fails a grade."""
    if sink is None:
        return
    from ..protocol import Progress

    try:
        sink(Progress(stage=stage, **fields))
    except Exception:  # noqa: BLE001 - progress is information only: a grade never fails for it
        pass


def epochs_callback(total: int, first: int = 0, what: str = ""):
    """A Keras callback that emits ``train`` after each epoch (epoch ``first + n`` of ``total``)."""
    import keras

    from .labels import history_key

    def done(epoch, logs):  # the accuracy under the grader's name, however the model's metric spells it
        shown: dict[str, float] = {}
        for key, value in (logs or {}).items():
            if history_key(key) in ("loss", "accuracy", "val_loss", "val_accuracy"):
                shown.setdefault(history_key(key), float(value))  # the first of two spellings wins
        emit("train", epoch=first + epoch + 1, epochs=total, what=what, metrics=shown)

    return keras.callbacks.LambdaCallback(on_epoch_end=done)
