"""Checks on the numbers the grader measured after training: accuracy, the over-fitting gap, the transfer gain.

Each takes the profile's threshold from course.yml; a missing threshold fails the check (never a silent pass).
The grader trains with the student's compile settings (the course's when the model comes uncompiled); when a
model compiled with another optimizer than the course's falls short, the message names both (optimizer_note).
"""

from __future__ import annotations

import math

from ...course import Compile
from ...errors import CheckFailed


def require_threshold(threshold: float | None, name: str) -> float:
    """The profile's threshold for check ``name``; a course without one is told so (never a silent pass)."""
    if threshold is None:
        raise CheckFailed(f"No {name} threshold is set for this profile in course.yml; tell your instructor.")
    return threshold


def describe_optimizer(optimizer) -> str:
    """A Keras optimizer as a student would write it: its class, learning rate (a schedule by its class and
    initial rate) and every other setting that differs from the class's default, e.g.
    ``SGD(learning_rate=0.01, momentum=0.9, nesterov=True)``."""
    config = optimizer.get_config()
    rate = config.get("learning_rate")
    if isinstance(rate, dict):  # a schedule from keras.optimizers.schedules
        start = rate.get("config", {}).get("initial_learning_rate")
        rate = f"{rate.get('class_name', 'schedule')}({'' if start is None else f'initial_learning_rate={start:.6g}'})"
    elif isinstance(rate, int | float):
        rate = f"{rate:.6g}"
    try:
        default = type(optimizer)().get_config()
    except Exception:  # noqa: BLE001 - an optimizer class that needs arguments: its learning rate alone
        default = config
    others = [f"{key}={value!r}" for key, value in config.items() if key not in ("name", "learning_rate")
              and isinstance(value, bool | int | float | str) and not _same(value, default.get(key))]
    return f"{type(optimizer).__name__}({', '.join([f'learning_rate={rate}', *others])})"


def _same(a, b) -> bool:
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=1e-6)
    return a == b


def _learning_rate(optimizer) -> float | None:
    """The optimizer's learning rate as a number; None for a schedule."""
    rate = optimizer.get_config().get("learning_rate")
    return float(rate) if isinstance(rate, int | float) else None


def course_optimizer(defaults: Compile):
    """The optimizer an uncompiled model is trained with: course.yml's ``compile:`` of the exercise."""
    import keras

    optimizer = keras.optimizers.get(defaults.optimizer)
    if defaults.learning_rate is not None:
        optimizer.learning_rate = defaults.learning_rate
    return optimizer


def optimizer_note(training, defaults: Compile | None) -> str | None:
    """Name the student's own optimizer as what fell short, when it is not the course's (its class, compared
    case-insensitively, or its learning rate differs); None when the course compiled the model, when the
    student compiled it with the course's optimizer, or when the course's is not known (``defaults`` None)."""
    optimizer = getattr(training.model, "optimizer", None)
    if training.compiled_by != "student" or defaults is None or optimizer is None:
        return None
    course = course_optimizer(defaults)
    same_class = type(optimizer).__name__.lower() == type(course).__name__.lower()
    rate, course_rate = _learning_rate(optimizer), _learning_rate(course)
    if same_class and rate is not None and course_rate is not None and math.isclose(rate, course_rate, rel_tol=1e-5):
        return None
    budget = f"the grader's budget of {training.epochs} epochs"
    if rate == 0:
        why = "whose learning rate of 0 never changes the weights"
    elif same_class and rate is not None and course_rate and rate > course_rate:
        why = (f"a learning rate {rate / course_rate:.3g} times the course's: its steps can overshoot and undo what "
               "the model learned")
    elif (same_class and rate is not None) or (type(optimizer).__name__ == "SGD" and rate is not None and rate <= 0.01):
        why = f"which learns slowly in {budget}"
    else:
        why = f"which may not learn as much as the course's optimizer does in {budget}"
    code = (repr(defaults.optimizer) if defaults.learning_rate is None else
            f"keras.optimizers.{type(course).__name__}(learning_rate={defaults.learning_rate:g})")
    return (f"The model was compiled with {describe_optimizer(optimizer)}, {why}; the course's default is "
            f"{describe_optimizer(course)}. Leave the model uncompiled (the grader then uses the course's optimizer) "
            f"or compile it with optimizer={code}.")


def _what_to_check(training, defaults: Compile | None) -> str:
    """What to check when the accuracy falls short: the student's optimizer when it is not the course's, else
    the layers and the loss (never a claim that a given part is wrong)."""
    note = optimizer_note(training, defaults)
    if note:
        return note
    if training.compiled_by == "course":
        return "Check the model's layers against the checks above (the grader compiled it with the course's settings)."
    optimizer = getattr(training.model, "optimizer", None)
    if defaults is None and optimizer is not None:  # the course's optimizer not known here: name the student's
        return (f"Check the model's layers against the checks above and the loss and optimizer you compile it with "
                f"({describe_optimizer(optimizer)}).")
    return "Check the model's layers against the checks above and the loss you compile it with."


def check_accuracy(training, threshold: float | None, *, defaults: Compile | None = None) -> str:
    """Test accuracy, measured by the grader after it trained the model, against the profile's threshold.

    ``defaults``: the exercise's course.yml ``compile:``; with it, a model the student compiled with another
    optimizer than the course's that falls short is told so, naming both.
    """
    threshold = require_threshold(threshold, "accuracy")
    got = training.test_accuracy
    budget = training.budget()
    if got < threshold:
        raise CheckFailed(f"Test accuracy: expected at least {threshold:.3f}. Received: {got:.4f} ({budget}). "
                          + _what_to_check(training, defaults))
    return f"test accuracy {got:.4f} >= {threshold:.3f} ({budget})."


LEARNED = 0.5  # train accuracy below this (chance is 0.1) means the model did not learn: its gap says nothing


ADD_REGULARIZATION = ("Add dropout, an L2 kernel_regularizer, batch normalization, augmentation layers, or early "
                      "stopping in fit_options().")


def check_gap(training, threshold: float | None, *, defaults: Compile | None = None,
              regularization: list[str] | None = None) -> str:
    """Train-minus-test accuracy, both measured by the grader, against the profile's maximum; only for a model
    that learned (a model that cannot learn, e.g. compiled with learning_rate=0, has no gap and earns nothing)
    and, when ``regularization`` is given (what :func:`.regularization.regularization_of` found), only for a
    model that adds some: the baseline as given earns nothing on a lucky seed (a structural failure, never
    trained again). ``defaults`` as for :func:`check_accuracy`."""
    threshold = require_threshold(threshold, "gap")
    said = (f"train accuracy {training.train_accuracy:.4f}, test accuracy {training.test_accuracy:.4f}, "
            f"{training.budget()}")
    if regularization is not None and not regularization:
        raise CheckFailed(
            "Expected some regularization added to the baseline before its gap earns points. Received: the "
            "baseline as given: no dropout, noise, normalization or augmentation layer, no weight penalty or "
            "constraint, no early stopping in fit_options(), no weight decay or label smoothing in compile() "
            f"(its gap in this training: {training.gap:.4f}; {said}). " + ADD_REGULARIZATION, structural=True)
    if training.train_accuracy < LEARNED:
        raise CheckFailed(
            f"The model did not learn: expected a train accuracy of at least {LEARNED:.2f} before its gap means "
            f"anything. Received: {said}. " + _what_to_check(training, defaults))
    if regularization:
        said += "; regularized by " + ", ".join(
            regularization[:4] + ([f"{len(regularization) - 4} more"] if len(regularization) > 4 else []))
    if training.gap > threshold:
        raise CheckFailed(
            f"The model still over-fits: expected a train-minus-test accuracy gap of at most {threshold:.3f}. "
            f"Received: {training.gap:.4f} ({said}). "
            + ("Make it stronger or add more: " + ADD_REGULARIZATION[4:] if regularization else ADD_REGULARIZATION))
    return f"gap {training.gap:.4f} <= {threshold:.3f} ({said})."


def check_gain(transfer, scratch, threshold: float | None) -> str:
    """The pretrained features must add accuracy over the same head trained on the raw pixels."""
    threshold = require_threshold(threshold, "gain")
    gain = transfer.test_accuracy - scratch.test_accuracy
    said = (f"test accuracy with the pretrained base {transfer.test_accuracy:.4f}, the same head alone on the "
            f"pixels, from scratch, {scratch.test_accuracy:.4f}; both {scratch.budget()}")
    if gain < threshold:
        raise CheckFailed(f"Transfer should beat training from scratch: expected a gain of at least {threshold:+.3f}. "
                          f"Received: {gain:+.4f} ({said}). Keep the base frozen and its features as they are; "
                          "a small head (one Dense layer, maybe Dropout) learns best from 100 images per class.")
    return f"gain {gain:+.4f} >= {threshold:+.3f}: {said}."
