"""Autograder for the RNN exercise (seed 001): the recurrent layer's type and units, parameters, accuracy.

Run through `deepgrade check rnn NOTEBOOK`, or directly:
    pytest autograders/test_rnn.py --deepgrade-notebook NOTEBOOK [--deepgrade-profile smoke]
"""

from deepgrade.grader import Layer, check_accuracy, check_parameters, check_recurrent

EXPECTED = [
    Layer("Reshape", target_shape=(28, 28)),
    Layer("LSTM", units=128),
    Layer("Dense", units=10, activation="softmax"),
]
INPUT_SHAPE = (28, 28, 1)
TOTAL_PARAMS = 81_674


def test_recurrent(model, passed):
    passed(check_recurrent(model, "LSTM", 128))


def test_parameters(model, passed):
    passed(check_parameters(model, EXPECTED, INPUT_SHAPE))


def test_accuracy(training, profile, exercise, passed):
    passed(check_accuracy(training, profile.thresholds.accuracy, defaults=exercise.compile))
