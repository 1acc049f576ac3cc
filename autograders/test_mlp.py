"""Autograder for the MLP exercise (seed 001): architecture, exact parameters, test accuracy.

Run through `deepgrade check mlp NOTEBOOK`, or directly:
    pytest autograders/test_mlp.py --deepgrade-notebook NOTEBOOK [--deepgrade-profile smoke]
Points and thresholds come from course.yml; the fixtures from the deepgrade plugin.
"""

from deepgrade.grader import Layer, check_accuracy, check_architecture, check_parameters

EXPECTED = [
    Layer("Flatten"),
    Layer("Dense", units=256, activation="relu"),
    Layer("Dropout", rate=0.4),
    Layer("Dense", units=256, activation="relu"),
    Layer("Dropout", rate=0.4),
    Layer("Dense", units=10, activation="softmax"),
]
INPUT_SHAPE = (28, 28, 1)
TOTAL_PARAMS = 269_322  # the seed's model.summary()


def test_architecture(model, passed):
    passed(check_architecture(model, EXPECTED))


def test_parameters(model, passed):
    passed(check_parameters(model, EXPECTED, INPUT_SHAPE))


def test_accuracy(training, profile, exercise, passed):
    passed(check_accuracy(training, profile.thresholds.accuracy, defaults=exercise.compile))
