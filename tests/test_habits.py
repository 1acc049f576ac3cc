"""Keras 2 habits get a Keras 3 answer: the slides' own code, run on the real stack, raises; the hint names the
Keras 3 way, and the Keras 3 way it names really works. Unrelated errors get no hint."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from deepgrade import habits
from deepgrade.habits import HABITS, hint_for, hint_for_text, install_ipython_hints

BASE = REPO / "solutions" / "transfer" / "pretrained_base"  # the course's base: a Keras 3 model.export()

# The slides, verbatim (seed 001 unless said otherwise).
SLIDE_SGD = "ops = tf.optimizers.SGD(lr=0.01, decay=1e-6, momentum=0.9, nesterov=True)"
SLIDE_MLP = """\
model = Sequential()
model.add(Dense(256, input_shape=(784,)))
model.add(Activation('relu'))
model.add(Dropout(0.4))
model.add(Dense(256))
model.add(Activation('relu'))
model.add(Dropout(0.4))
model.add(Dense(10))
model.add(Activation('softmax'))
"""
SLIDE_COMPILE = "model.compile(optimizer='sgd',loss='sparse_categorical_crossentropy',metrics=['accuracy'])"
SLIDE_HISTORY = """\
acc = history.history['acc']
val_acc = history.history['val_acc']
"""
SLIDE_FIT_GENERATOR = "model.fit_generator(generator)"  # seed 002
SLIDE_HUB = """\
hub_feature_extractor = hub.KerasLayer(
    url, trainable=False,
    input_shape=(299, 299, 3),
    output_shape=(2048,),
    dtype=tf.float32)

inception_model = Sequential(
    [hub_feature_extractor, Dense(num_classes, activation='softmax')],
    name="inception_tf_hub")
"""
PRELUDE = """\
import numpy as np
import tensorflow as tf
import keras
from keras import layers
from keras.models import Sequential
from keras.layers import Dense, Activation, Dropout
"""


def raised(code: str, **names) -> BaseException:
    """Run ``code`` as a student's file (so its lines are in the traceback) and return what it raised."""
    folder = Path(tempfile.mkdtemp(prefix="student-"))
    path = folder / "student.py"
    path.write_text(PRELUDE + code)
    namespace = dict(names)
    try:
        exec(compile(path.read_text(), str(path), "exec"), namespace)
    except Exception as exc:  # noqa: BLE001
        return exc
    raise AssertionError(f"expected the code to raise:\n{code}")


def fashion_like(n=8):
    rng = np.random.default_rng(0)
    return rng.random((n, 28, 28, 1), dtype="float32"), rng.integers(0, 10, n)


# --- optimizers ------------------------------------------------------------------------------------------

def test_the_slides_sgd_line_gets_learning_rate_and_a_schedule():
    exc = raised(SLIDE_SGD)
    assert isinstance(exc, ValueError) and str(exc) == "Argument(s) not recognized: {'lr': 0.01}"
    hint = hint_for(exc)
    assert "Keras 3 wants `learning_rate=`: keras.optimizers.SGD(learning_rate=0.01, momentum=0.9, nesterov=True)" \
        in hint
    assert "InverseTimeDecay(0.01, decay_steps=1, decay_rate=1e-6)" in hint and hint.endswith("Received: lr=0.01.")


def test_the_keras_3_optimizer_the_hint_names_works_and_decays_as_keras_2_did():
    import keras

    schedule = keras.optimizers.schedules.InverseTimeDecay(0.01, decay_steps=1, decay_rate=1e-6)
    opt = keras.optimizers.SGD(learning_rate=schedule, momentum=0.9, nesterov=True)
    for step in (0, 1000, 10**6):  # Keras 2's decay: lr / (1 + decay * iterations)
        assert float(schedule(step)) == pytest.approx(0.01 / (1 + 1e-6 * step))
    assert isinstance(opt, keras.optimizers.SGD)


def test_lr_in_another_optimizer_keeps_its_other_arguments():
    exc = raised("opt = keras.optimizers.Adam(beta_1=0.8, lr=0.001)")
    assert "keras.optimizers.Adam(beta_1=0.8, learning_rate=0.001)" in hint_for(exc)
    exc = raised("opt = keras.optimizers.RMSprop(0.001)\nopt.lr")
    assert isinstance(exc, AttributeError) and "optimizer.learning_rate" in hint_for(exc)


def test_decay_alone_is_only_a_warning_in_keras_3_and_its_text_gets_the_schedule():
    import keras

    with pytest.warns(UserWarning, match="decay") as caught:
        keras.optimizers.SGD(learning_rate=0.05, decay=1e-4)  # no error: the decay is silently ignored
    hint = hint_for_text(str(caught[0].message), source="keras.optimizers.SGD(learning_rate=0.05, decay=1e-4)")
    assert "InverseTimeDecay(0.05, decay_steps=1, decay_rate=1e-4)" in hint and hint.endswith("Received: decay=1e-4.")


# --- inputs: the flat 784 of the slides ------------------------------------------------------------------

def test_the_slides_mlp_fed_images_gets_input_and_flatten():
    exc = raised(SLIDE_MLP + "model.predict(images, verbose=0)\n", images=fashion_like()[0])
    assert isinstance(exc, ValueError) and "Exception encountered when calling Sequential.call()" in str(exc)
    hint = hint_for(exc)
    assert "keras.Input((28, 28, 1)), layers.Flatten()" in hint
    assert "Received: inputs of shape (8, 28, 28, 1) for a model that expects (None, 784)." in hint


def test_the_keras_3_mlp_the_hint_names_takes_the_images():
    import keras
    from keras import layers

    model = keras.Sequential([keras.Input((28, 28, 1)), layers.Flatten(), layers.Dense(256, activation="relu"),
                              layers.Dropout(0.4), layers.Dense(256, activation="relu"), layers.Dropout(0.4),
                              layers.Dense(10, activation="softmax")])
    assert model.predict(fashion_like()[0], verbose=0).shape == (8, 10) and model.count_params() == 269_322


def test_the_grader_says_it_when_the_saved_784_model_cannot_take_images(tmp_path):
    """grader/loading.py: the model file of the slides' MLP, loaded in safe mode, given 28x28x1 images."""
    import keras

    from deepgrade.errors import StudentCodeError
    from deepgrade.grader.loading import check_io, load_model

    namespace = {}
    exec(PRELUDE + SLIDE_MLP, namespace)
    namespace["model"].save(tmp_path / "build_model.keras")
    keras.backend.clear_session()
    with pytest.raises(StudentCodeError) as info:
        check_io(load_model(tmp_path / "build_model.keras"))
    message = str(info.value)
    assert message.startswith("The model does not accept a batch of 28x28x1 images")
    assert "Keras 3 wants the image shape as the input and a Flatten layer first" in message
    assert "Received: inputs of shape (2, 28, 28, 1) for a model that expects (None, 784)." in message


def test_a_784_model_failing_inside_a_check_is_the_students_fault_not_the_graders():
    from deepgrade.grader.plugin import _message

    message, grader_fault = _message(raised(SLIDE_MLP + "model(images)\n", images=fashion_like()[0]))
    assert not grader_fault and "layers.Flatten()" in message and "tell your instructor" not in message


# --- fit_generator, the 'acc' key --------------------------------------------------------------------------

def test_fit_generator_gets_fit_and_fit_takes_the_generator():
    x, y = fashion_like()
    model_code = ("model = keras.Sequential([keras.Input((28, 28, 1)), layers.Flatten(), "
                  "layers.Dense(10, activation='softmax')])\n" + SLIDE_COMPILE + "\n")
    generator = ((x, y) for _ in range(100))
    exc = raised(model_code + SLIDE_FIT_GENERATOR + "\n", generator=generator)
    assert isinstance(exc, AttributeError) and "no attribute 'fit_generator'" in str(exc)
    assert "Keras 3 wants `model.fit(generator, ...)`" in hint_for(exc)
    namespace = {"generator": generator}  # what the hint says works
    exec(PRELUDE + model_code + "history = model.fit(generator, steps_per_epoch=2, epochs=1, verbose=0)\n", namespace)
    assert len(namespace["history"].history["loss"]) == 1


def test_the_slides_history_acc_gets_the_accuracy_key():
    x, y = fashion_like()
    code = ("model = keras.Sequential([keras.Input((28, 28, 1)), layers.Flatten(), layers.Dense(10, activation='softmax')])\n"
            + SLIDE_COMPILE + "\nhistory = model.fit(x, y, validation_split=0.5, epochs=1, verbose=0)\n" + SLIDE_HISTORY)
    exc = raised(code, x=x, y=y)
    assert isinstance(exc, KeyError) and exc.args == ("acc",)
    hint = hint_for(exc)
    assert "history.history['accuracy']" in hint and "metrics=['accuracy'] gives 'accuracy'" in hint


def test_keras_3_keeps_acc_when_compiled_with_acc():
    """What the hint says of Keras 3.15: the history's keys are the metric names as given to compile()."""
    import keras
    from keras import layers

    x, y = fashion_like()
    model = keras.Sequential([keras.Input((28, 28, 1)), layers.Flatten(), layers.Dense(10, activation="softmax")])
    for name, keys in (("acc", {"acc", "val_acc"}), ("accuracy", {"accuracy", "val_accuracy"})):
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=[name])
        history = model.fit(x, y, validation_split=0.5, epochs=1, verbose=0)
        assert keys <= set(history.history)


# --- tf_keras and hub.KerasLayer ----------------------------------------------------------------------------

def test_a_tf_keras_layer_in_a_keras_3_model_gets_import_keras():
    exc = raised("import tf_keras\nmodel = keras.Sequential([keras.Input((28, 28, 1)), tf_keras.layers.Flatten()])")
    assert isinstance(exc, ValueError) and "Only instances of `keras.Layer`" in str(exc)
    hint = hint_for(exc)
    assert "`import keras`" in hint and "TF_USE_LEGACY_KERAS" in hint
    assert hint.endswith("Received: a tf_keras.src.layers.reshaping.flatten.Flatten.")


def test_a_tf_keras_layer_called_on_a_keras_3_tensor_is_told_by_its_traceback():
    exc = raised("import tf_keras\ninputs = keras.Input((28, 28, 1))\nx = tf_keras.layers.Flatten()(inputs)")
    assert str(exc) == "'tuple' object has no attribute 'rank'"  # says nothing of tf_keras: the traceback does
    assert hint_for(exc).startswith("The error came from tf_keras (Keras 2), not Keras 3")


def test_tf_keras_in_tf_2_21_is_keras_3():
    import keras
    import tensorflow as tf

    assert tf.keras.Sequential is keras.Sequential  # so `tf.keras` code raises Keras 3's errors, with these hints
    assert hint_for(raised("tf.keras.optimizers.SGD(lr=0.01)")).startswith("`lr` is the Keras 2 name")


@pytest.fixture(scope="module")
def callable_savedmodel(tmp_path_factory):
    """A TF2 SavedModel with a callable default, as TF Hub's feature vectors are."""
    import tensorflow as tf

    class Features(tf.Module):
        def __init__(self):
            self.w = tf.Variable(tf.ones((784, 8)))

        @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32)])
        def __call__(self, x):
            return tf.matmul(tf.reshape(x, (-1, 784)), self.w)

    path = tmp_path_factory.mktemp("hub") / "features"
    tf.saved_model.save(Features(), str(path))
    return str(path)


@pytest.mark.parametrize("which", ["hub_model", "course_base"])
def test_the_slides_hub_keras_layer_gets_the_base_or_tfsmlayer(which, callable_savedmodel):
    import tensorflow_hub as hub

    url = callable_savedmodel if which == "hub_model" else str(BASE)
    code = "import tensorflow_hub as hub\n" + SLIDE_HUB.replace("(299, 299, 3)", "(28, 28, 1)")
    exc = raised(code, url=url, num_classes=5)
    assert isinstance(exc, ValueError)
    assert ("Only instances of `keras.Layer`" in str(exc) if which == "hub_model"
            else "Signature name has to be specified" in str(exc))
    hint = hint_for(exc)
    assert hint.startswith("hub.KerasLayer is a tf_keras (Keras 2) layer")
    assert "build_model(base)" in hint and "keras.layers.TFSMLayer(path, call_endpoint='serving_default')" in hint
    assert hub.KerasLayer  # the library is real, not stubbed


def test_the_tfsmlayer_the_hint_names_takes_the_course_base():
    import keras

    model = keras.Sequential([keras.Input((28, 28, 1)),
                              keras.layers.TFSMLayer(str(BASE), call_endpoint="serving_default")])
    out = model(fashion_like()[0])
    assert len(out) and all(v.shape[0] == 8 for v in (out.values() if isinstance(out, dict) else [out]))


# --- what gets no hint ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("code", [
    "layers.Dense(-1)",                                  # a Keras 3 error of another kind
    "{'loss': [1.0]}['val_loss']",                       # a KeyError of another key
    "1 / 0",
    "model = keras.Sequential([keras.Input((784,)), layers.Dense(10)])\nmodel(np.zeros((2, 100), 'float32'))",
    "keras.optimizers.SGD(learning_rate=0.01, momentun=0.9)",  # a typo, not a Keras 2 name
])
def test_unrelated_errors_get_no_hint(code):
    exc = raised(code)
    assert hint_for(exc) is None, (exc, hint_for(exc))


def test_only_limits_the_habits_and_names_are_checked():
    exc = raised(SLIDE_SGD)
    assert hint_for(exc, only=["flat_input"]) is None
    assert hint_for(exc, only=["optimizer_lr"])
    with pytest.raises(ValueError, match="Unknown habit"):
        hint_for(exc, only=["no_such_habit"])
    assert len(HABITS) == 9
    assert habits.hint is hint_for  # the name notebook_checks imports


def test_the_module_imports_no_keras_and_installs_nothing_outside_ipython():
    code = ("import sys, deepgrade.habits as h; assert h.install_ipython_hints() is False; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('keras', 'tensorflow', 'tf_keras') "
            "or m.startswith('deepgrade.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip().splitlines()[-1] == "['deepgrade.errors', 'deepgrade.habits']" or \
        out.stdout.strip().splitlines()[-1] == "['deepgrade.habits']"


# --- the sandbox and the grade ---------------------------------------------------------------------------------

def _submission(tmp_path, course, answer: str) -> Path:
    from deepgrade.course import write_submission

    answer_file = tmp_path / "answer.py"
    answer_file.write_text(textwrap.dedent(answer))
    return write_submission(course.release_notebook("mlp"), answer_file, tmp_path / "mlp.ipynb")


@pytest.mark.slow
def test_deepgrade_check_says_learning_rate_for_sgd_lr_in_build_model(tmp_path, course):
    """The student's jail runs build_model with the slides' SGD(lr=...); every check's message says the fix."""
    from deepgrade.grader import grade
    from deepgrade.grader.run import build_submission

    notebook = _submission(tmp_path, course, """\
        def build_model():
            model = keras.Sequential([
                keras.Input(shape=(28, 28, 1)),
                layers.Flatten(),
                layers.Dense(256, activation="relu"),
                layers.Dropout(0.4),
                layers.Dense(256, activation="relu"),
                layers.Dropout(0.4),
                layers.Dense(10, activation="softmax"),
            ])
            model.compile(optimizer=keras.optimizers.SGD(lr=0.01, decay=1e-6, momentum=0.9, nesterov=True),
                          loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            return model
        """)
    submission = build_submission(course, "mlp", notebook, tmp_path / "models")
    report = grade(course, "mlp", submission, profile="smoke", seed=1)
    assert report.score == 0
    for check in report.checks:
        assert check.message.startswith("build_model() raised ValueError: Argument(s) not recognized: {'lr': 0.01}.")
        assert "keras.optimizers.SGD(learning_rate=0.01, momentum=0.9, nesterov=True)" in check.message
        assert "InverseTimeDecay" in check.message


@pytest.mark.slow
def test_a_failing_cell_in_the_jail_gets_the_hint(tmp_path):
    from deepgrade.sandbox import run_notebook

    nb = tmp_path / "student.ipynb"
    import nbformat

    nbformat.write(nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import keras"),
        nbformat.v4.new_code_cell("model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten()])\n"
                                  "model.compile(optimizer=keras.optimizers.SGD(lr=0.01, momentum=0.9),\n"
                                  "              loss='sparse_categorical_crossentropy')\n"
                                  "model.fit_generator(iter([]))  # not run: grading does not need it"),
        nbformat.v4.new_code_cell("def build_model():\n    return model"),
    ]), nb)
    submission = run_notebook(nb, ["build_model"], tmp_path / "out")
    assert submission.errors["build_model"].startswith(
        "build_model() reads `model`, changed in cell 2, which raised ValueError: Argument(s) not recognized: "
        "{'lr': 0.01}. `lr` is the Keras 2 name of the learning rate. Keras 3 wants `learning_rate=`: "
        "keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)"), submission.errors


@pytest.mark.slow
def test_the_slides_784_mlp_graded_gets_input_and_flatten(tmp_path, course):
    from deepgrade.grader import grade
    from deepgrade.grader.run import build_submission

    body = "".join(f"    {line}\n" for line in SLIDE_MLP.splitlines())
    notebook = _submission(tmp_path, course, "from keras.models import Sequential\n"
                                             "from keras.layers import Dense, Activation, Dropout\n\n\n"
                                             "def build_model():\n" + body + "    return model\n")
    submission = build_submission(course, "mlp", notebook, tmp_path / "models")
    report = grade(course, "mlp", submission, profile="smoke", seed=1, only=["accuracy"])
    (check,) = report.checks
    assert not check.passed and check.message.startswith("The model does not accept a batch of 28x28x1 images")
    assert "keras.Input((28, 28, 1)), layers.Flatten()" in check.message


# --- the student's own kernel ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_kernel_shows_the_traceback_then_the_hint_for_matching_errors_only(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in (
        "import deepgrade.habits\nassert deepgrade.habits.install_ipython_hints()\nimport keras",
        "opt = keras.optimizers.SGD(learning_rate=0.05, decay=1e-4)",  # only a warning in Keras 3
        SLIDE_SGD.replace("tf.optimizers", "keras.optimizers"),
        "1 / 0",
        "print('still running')",
    )])
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [[o for o in cell.outputs if o.output_type == "error"] for cell in nb.cells]
    assert not errors[0] and not errors[1] and not errors[4]
    stderr = "".join(o.get("text", "") for o in nb.cells[1].outputs if o.output_type == "stream")
    assert "Argument `decay` is no longer supported" in stderr  # Keras's own warning, then the hint
    assert "Keras 3: `decay=` is a Keras 2 optimizer argument" in stderr
    assert "InverseTimeDecay(0.05, decay_steps=1, decay_rate=1e-4)" in stderr
    (lr,) = errors[2]
    assert lr.ename == "ValueError" and "Argument(s) not recognized" in "\n".join(lr.traceback)  # the usual one ...
    assert "Keras 3:" in lr.traceback[-1] and "learning_rate=0.01" in lr.traceback[-1]  # ... then the hint
    (zero,) = errors[3]
    assert zero.ename == "ZeroDivisionError" and not any("Keras 3" in line for line in zero.traceback)
    assert "still running" in "".join(o.get("text", "") for o in nb.cells[4].outputs)


def test_install_outside_ipython_does_nothing():
    assert install_ipython_hints() is False
