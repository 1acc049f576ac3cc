"""Autograder for the CNN exercise: the seed-001 CNN (architecture, parameters, output shapes, accuracy)
and the strided CNN of seed 003 (each layer's output shape and parameters).

Run through `deepgrade check cnn NOTEBOOK`, or directly:
    pytest autograders/test_cnn.py --deepgrade-notebook NOTEBOOK [--deepgrade-profile smoke]
"""

from deepgrade.grader import Layer, check_accuracy, check_architecture, check_output_shapes, check_parameters

EXPECTED = [
    Layer("Conv2D", filters=64, kernel_size=3, strides=1, padding="valid", activation="relu"),
    Layer("MaxPooling2D", pool_size=2),
    Layer("Conv2D", filters=64, kernel_size=3, strides=1, padding="valid", activation="relu"),
    Layer("MaxPooling2D", pool_size=2),
    Layer("Flatten"),
    Layer("Dropout", rate=0.2),
    Layer("Dense", units=10, activation="softmax"),
]
STRIDED = [
    Layer("Conv2D", filters=4, kernel_size=5, strides=1, padding="same"),
    Layer("Conv2D", filters=8, kernel_size=3, strides=2, padding="same"),
    Layer("Conv2D", filters=12, kernel_size=3, strides=2, padding="same"),
    Layer("Flatten"),
    Layer("Dense", units=200),
    Layer("Dense", units=10),
]
INPUT_SHAPE = (28, 28, 1)
TOTAL_PARAMS = 53_578
STRIDED_PARAMS = 121_086


def test_architecture(model, passed):
    passed(check_architecture(model, EXPECTED))


def test_parameters(model, passed):
    passed(check_parameters(model, EXPECTED, INPUT_SHAPE))


def test_output_shapes(model, passed):
    passed(check_output_shapes(model, EXPECTED, INPUT_SHAPE))


def test_accuracy(training, profile, exercise, passed):
    passed(check_accuracy(training, profile.thresholds.accuracy, defaults=exercise.compile))


def test_strided_shapes(models, passed):
    passed(check_output_shapes(models("build_strided_model"), STRIDED, INPUT_SHAPE))


def test_strided_parameters(models, passed):
    passed(check_parameters(models("build_strided_model"), STRIDED, INPUT_SHAPE))
