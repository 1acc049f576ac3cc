"""Autograder for the transfer-learning exercise.

build_model(base): the course's pretrained base is used and frozen, the head is new, the test accuracy on
the target task reaches the threshold, and it beats the same head trained alone on the raw pixels (gain).
build_finetune_model(base): the base's weights change in training and accuracy does not collapse. Trained
as the Keras guide fine-tunes: the new head first with the base frozen, then the whole model with the
student's compile settings (course.yml transfer.finetune_warmup).

The base's pretrained weights are restored by the grader from course.yml's handle (fixture `base`), never
taken from the student's file. Run through `deepgrade check transfer NOTEBOOK`, or directly:
    pytest autograders/test_transfer.py --deepgrade-notebook NOTEBOOK [--deepgrade-profile smoke]
"""

import pytest

from deepgrade.grader import (
    check_accuracy,
    check_base_frozen,
    check_base_used,
    check_fine_tuning,
    check_gain,
    check_head_new,
    head_alone,
    head_first,
    restore,
)

FINETUNE = "build_finetune_model"


@pytest.fixture(scope="session")
def head_alone_training(model, base, train, grading):
    """The student's head, fresh, trained on the raw pixels: same images, seed and budget."""
    result = train(head_alone(model, base))
    grading.record(head_alone_accuracy=result.test_accuracy)
    return result


@pytest.fixture(scope="session")
def finetune_training(models, base, train, grading, profile):
    """Head first with the base frozen (course defaults), then the student's model as built and compiled."""
    result = train(models(FINETUNE), restore(base), warmup=head_first(base, grading.exercise.transfer, profile))
    grading.record(finetune_accuracy=result.test_accuracy)
    return result


def test_base_used(model, base, passed):
    passed(check_base_used(model, base))


def test_base_frozen(model, base, passed):
    passed(check_base_frozen(model, base))


def test_head_new(model, base, task, passed):
    passed(check_head_new(model, base, task.num_classes))


def test_accuracy(training, profile, exercise, passed):
    passed(check_accuracy(training, profile.thresholds.accuracy, defaults=exercise.compile))


def test_gain(training, head_alone_training, profile, grading, passed):
    grading.record(gain=training.test_accuracy - head_alone_training.test_accuracy)
    passed(check_gain(training, head_alone_training, profile.thresholds.gain))


def test_fine_tuning(models, base, finetune_training, profile, passed):
    passed(check_fine_tuning(models(FINETUNE), base, finetune_training, profile.thresholds.fine_tuning))
