"""Checks on the numbers the grader measured after training: accuracy, the over-fitting gap, the transfer gain.

Each takes the profile's threshold from course.yml; a missing threshold fails the check (never a silent pass).
"""

from __future__ import annotations

from ...errors import CheckFailed


def require_threshold(threshold: float | None, name: str) -> float:
    """The profile's threshold for check ``name``; a course without one is told so (never a silent pass)."""
    if threshold is None:
        raise CheckFailed(f"No {name} threshold is set for this profile in course.yml; tell your instructor.")
    return threshold


def check_accuracy(training, threshold: float | None) -> str:
    """Test accuracy, measured by the grader after it trained the model, against the profile's threshold."""
    threshold = require_threshold(threshold, "accuracy")
    got = training.test_accuracy
    budget = training.budget()
    if got < threshold:
        raise CheckFailed(
            f"Test accuracy: expected at least {threshold:.3f}. Received: {got:.4f} ({budget}). "
            "Check the activations (relu inside, softmax at the end) and, if you compile the model, "
            "the loss and optimizer.")
    return f"test accuracy {got:.4f} >= {threshold:.3f} ({budget})."


LEARNED = 0.5  # train accuracy below this (chance is 0.1) means the model did not learn: its gap says nothing


def check_gap(training, threshold: float | None) -> str:
    """Train-minus-test accuracy, both measured by the grader, against the profile's maximum; only for a model
    that learned (a model that cannot learn, e.g. compiled with learning_rate=0, has no gap and earns nothing)."""
    threshold = require_threshold(threshold, "gap")
    said = (f"train accuracy {training.train_accuracy:.4f}, test accuracy {training.test_accuracy:.4f}, "
            f"{training.budget()}")
    if training.train_accuracy < LEARNED:
        raise CheckFailed(
            f"The model did not learn: expected a train accuracy of at least {LEARNED:.2f} before its gap means "
            f"anything. Received: {said}. Check the optimizer's learning rate and the loss in compile().")
    if training.gap > threshold:
        raise CheckFailed(
            f"The model still over-fits: expected a train-minus-test accuracy gap of at most {threshold:.3f}. "
            f"Received: {training.gap:.4f} ({said}). Add dropout, an L2 kernel_regularizer, batch "
            "normalization, augmentation layers, or early stopping in fit_options().")
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
