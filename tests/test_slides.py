"""The slides' own code graded as a student's answer, and what a student's compile settings may cost.

The grader trains with the student's compile settings (DESIGN.md's student contract); when a model compiled
with another optimizer than the course's falls short, the message names both, and never blames parts of the
model that are right. The slides' models (``tests/submissions/slides/``, seed 001 as written, adapted only where
Keras 3 requires it): the MLP with the slides' compile line (``optimizer='sgd'``), the CNN (no compile line), the
TensorFlow Hub model (a frozen base and one Dense softmax). Seed 001's RNN slides show no code and its
regularization slides only fragments, so those two exercises have no slides' answer.
"""

import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import REPO, by_name
from deepgrade.course import Compile, write_submission
from deepgrade.errors import CheckFailed
from deepgrade.grader.checks.metrics import check_accuracy, check_gap, describe_optimizer, optimizer_note
from deepgrade.grader.checks.transfer import _tuned_with
from deepgrade.grader.training import Training

SLIDES = REPO / "tests" / "submissions" / "slides"
SEED = 1
SGD_NOTE = ("The model was compiled with SGD(learning_rate=0.01), which learns slowly in the grader's budget of 3 "
            "epochs; the course's default is Adam(learning_rate=0.001). Leave the model uncompiled (the grader then "
            "uses the course's optimizer) or compile it with optimizer='adam'.")


def trained(optimizer=None, compiled_by="student", test=0.658, train=0.70, epochs=3) -> Training:
    """A Training as the grader returns it, with ``optimizer`` as its model's (no model is built or trained)."""
    return Training(test_accuracy=test, train_accuracy=train, train_size=10_000, epochs=epochs, seconds=1.0,
                    evaluate_seconds=0.1, compiled_by=compiled_by, final_loss=1.0,
                    model=SimpleNamespace(optimizer=optimizer))


def failure(check, *args, **kwargs) -> str:
    with pytest.raises(CheckFailed) as info:
        check(*args, **kwargs)
    return str(info.value)


# -- the helpers, on real Keras optimizers (no training) ------------------------------------------------------

def test_describe_optimizer_reads_like_the_code_that_made_it():
    import keras

    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1000, decay_rate=0.9)
    assert describe_optimizer(keras.optimizers.get("sgd")) == "SGD(learning_rate=0.01)"
    assert describe_optimizer(keras.optimizers.Adam()) == "Adam(learning_rate=0.001)"
    assert describe_optimizer(keras.optimizers.RMSprop(1e-4)) == "RMSprop(learning_rate=0.0001)"
    assert (describe_optimizer(keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True))  # the slides' SGD, Keras 3
            == "SGD(learning_rate=0.01, momentum=0.9, nesterov=True)")
    assert describe_optimizer(keras.optimizers.SGD(schedule)) == "SGD(learning_rate=ExponentialDecay(initial_learning_rate=0.1))"


def test_accuracy_names_a_students_other_optimizer_and_nothing_else():
    import keras

    message = failure(check_accuracy, trained(keras.optimizers.SGD()), 0.80, defaults=Compile())
    assert message == ("Test accuracy: expected at least 0.800. Received: 0.6580 (trained by the grader on 10,000 "
                       "images for 3 epochs). " + SGD_NOTE)
    too_fast = failure(check_accuracy, trained(keras.optimizers.Adam(0.1)), 0.80, defaults=Compile())
    assert "compiled with Adam(learning_rate=0.1), a learning rate 100 times the course's" in too_fast
    frozen = optimizer_note(trained(keras.optimizers.SGD(0.0)), Compile())
    assert frozen.startswith("The model was compiled with SGD(learning_rate=0), whose learning rate of 0 never changes")
    # the course's optimizer, however written: its class (any case) and learning rate (None: the class's default)
    assert optimizer_note(trained(keras.optimizers.Adam()), Compile(optimizer="Adam")) is None
    assert optimizer_note(trained(keras.optimizers.Adam(1e-4)), Compile(learning_rate=1e-4)) is None
    slower = optimizer_note(trained(keras.optimizers.Adam()), Compile(learning_rate=1e-4))
    assert "the course's default is Adam(learning_rate=0.0001)" in slower
    assert slower.endswith("optimizer=keras.optimizers.Adam(learning_rate=0.0001).")


@pytest.mark.parametrize(("compiled_by", "says"), [
    ("course", "Check the model's layers against the checks above (the grader compiled it with the course's settings)."),
    ("student", "Check the model's layers against the checks above and the loss you compile it with."),
])
def test_accuracy_with_the_courses_optimizer_blames_no_part_that_may_be_right(compiled_by, says):
    import keras

    message = failure(check_accuracy, trained(keras.optimizers.Adam(), compiled_by), 0.80, defaults=Compile())
    assert message.endswith(says) and "activation" not in message and "optimizer" not in message


def test_old_calls_without_defaults_still_work_and_name_the_students_optimizer():
    import keras

    message = failure(check_accuracy, trained(keras.optimizers.SGD()), 0.80)
    assert message.endswith("the loss and optimizer you compile it with (SGD(learning_rate=0.01)).")
    assert check_accuracy(trained(keras.optimizers.SGD(), test=0.85), 0.80).startswith("test accuracy 0.8500 >= 0.800")


def test_gap_of_a_model_that_did_not_learn_names_the_optimizer_only_when_it_is_the_students_own():
    import keras

    stuck = failure(check_gap, trained(keras.optimizers.SGD(0.0), test=0.10, train=0.11, epochs=40), 0.11,
                    defaults=Compile())
    assert stuck.startswith("The model did not learn")
    assert "compiled with SGD(learning_rate=0), whose learning rate of 0 never changes the weights" in stuck
    course = failure(check_gap, trained(compiled_by="course", test=0.10, train=0.11), 0.11, defaults=Compile())
    assert "optimizer" not in course and course.endswith("(the grader compiled it with the course's settings).")


def test_fine_tuning_says_which_optimizer_it_ran_with():
    import keras

    assert _tuned_with(trained(keras.optimizers.Adam(0.1))) == (
        " The fine-tuning epochs ran with Adam(learning_rate=0.1), as build_finetune_model(base) compiled it.")
    assert _tuned_with(trained(keras.optimizers.Adam(), compiled_by="course")) == (
        " build_finetune_model(base) returned an uncompiled model, so the fine-tuning epochs ran with the course's "
        "default, Adam(learning_rate=0.001).")


# -- the slides' models, graded for real (student's jail, then the grader; smoke profile, seed 1) -------------

@pytest.fixture(scope="module")
def slides(course, tmp_path_factory):
    """slides(exercise, only) -> the Report of tests/submissions/slides/<exercise>.py, graded on ``only``."""
    from deepgrade.grader import grade
    from deepgrade.grader.run import build_submission

    folder = tmp_path_factory.mktemp("slides")

    def get(exercise: str, only: list[str]):
        notebook = write_submission(course.release_notebook(exercise), SLIDES / f"{exercise}.py",
                                    folder / f"{exercise}.ipynb")
        with tempfile.TemporaryDirectory(prefix="deepgrade-models-") as models:
            submission = build_submission(course, exercise, notebook, Path(models))
            return grade(course, exercise, submission, profile="smoke", seed=SEED, only=only)

    return get


@pytest.mark.slow
def test_slides_mlp_has_the_right_layers_and_its_sgd_is_named_as_the_cause(slides):
    """Seed 001's MLP with the slides' compile line: every layer right, and SGD at 0.01 too slow for 3 epochs."""
    report = slides("mlp", ["architecture", "parameters", "accuracy"])
    checks = by_name(report)
    assert checks["architecture"].passed and checks["parameters"].passed, report.checks
    assert "269,322" in checks["parameters"].message
    accuracy = checks["accuracy"]
    assert not accuracy.passed and report.environment["compiled_by"] == "student"
    assert accuracy.message.endswith(SGD_NOTE)
    assert "activation" not in accuracy.message.lower()
    assert 0.5 < report.environment["metrics"]["test_accuracy"] < 0.80  # learns, slowly (0.66 under seed 1)


@pytest.mark.slow
def test_slides_cnn_is_the_courses_network(slides):
    """Seed 001's CNN, as written: every structural check passes. It compiles nothing, so the grader trains it
    with the course's Adam: it is the reference network, whose accuracy test_cnn grades (not trained twice here)."""
    report = slides("cnn", ["architecture", "parameters", "output_shapes"])
    assert all(c.passed for c in report.checks), report.checks


@pytest.mark.slow
def test_slides_transfer_model_is_a_frozen_base_with_a_new_head(slides):
    """Seed 001's TensorFlow Hub model, with the course's base in place of hub.KerasLayer (no training)."""
    report = slides("transfer", ["base_used", "base_frozen", "head_new"])
    assert all(c.passed for c in report.checks), report.checks
