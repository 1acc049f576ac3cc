"""Transfer learning: the course's own pretrained base (a SavedModel reached through tensorflow_hub), frozen
feature extraction and fine-tuning, and the grader restoring the pretrained weights itself."""

import json

import numpy as np
import pytest

from conftest import REPO, by_name, graded_solution
from deepgrade.errors import ConfigError
from deepgrade.grader import grade
from deepgrade.pretrain import pretrain_base
from deepgrade.pretrained import KERAS_CONFIG, MANIFEST, load_base, weights_digest
from deepgrade.protocol import Submission

CHECKS = ["base_used", "base_frozen", "head_new", "accuracy", "gain", "fine_tuning"]


@pytest.fixture(scope="module")
def handle(course):
    return course.base_handle("transfer")


def test_solution_passes_every_check(graded):
    report = graded_solution(graded, "transfer", CHECKS)
    metrics = report.environment["metrics"]
    assert metrics["gain"] == pytest.approx(metrics["test_accuracy"] - metrics["head_alone_accuracy"], abs=1e-5)
    assert report.environment["train_size"] == 500  # 100 images of each of the 5 target classes
    assert ("20 epochs of the head with the base frozen, then 20 epochs of fine-tuning"
            in by_name(report)["fine_tuning"].message)  # course.yml transfer.finetune_warmup: 0.5 of 40 epochs


@pytest.mark.slow
def test_fine_tuning_with_a_huge_learning_rate_collapses(graded):
    """The calibration baseline too_fast: the base's weights change, but Adam(0.1) destroys its features. One
    training, as calibration measures it: its retry would train the whole grade again for the same message
    (the retry rule's own tests are in test_retry)."""
    checks = by_name(graded("transfer", "too_fast", retry=False))
    assert checks["fine_tuning"].message.startswith("Fine-tuning collapsed: expected test accuracy of at least")
    assert "Adam(1e-4)" in checks["fine_tuning"].message  # says what to do
    assert ("The fine-tuning epochs ran with Adam(learning_rate=0.1), as build_finetune_model(base) compiled it."
            in checks["fine_tuning"].message)  # and with what it ran: the learning rate is the exercise


@pytest.mark.slow
def test_warm_up_freezes_the_base_then_gives_back_the_students_flags(course, handle):
    """Head first with the base frozen; then the base trains as the student set it: a layer they froze stays put."""
    import keras

    from deepgrade.course import Profile
    from deepgrade.grader import Task, Warmup, find_base, restore, train_and_evaluate

    base = load_base(handle)
    base.trainable = True
    base.layers[0].trainable = False  # the student keeps the first convolution frozen
    model = keras.Sequential([keras.Input((28, 28, 1)), base, keras.layers.Dense(5, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    exercise = course.exercise("transfer")
    result = train_and_evaluate(model, Profile(epochs=3, batch_size=100), exercise.compile, 1, task=Task.of(exercise),
                                prepare=restore(base), warmup=Warmup(2, lambda fresh: find_base(fresh, base)))
    tuned = find_base(result.model, base)
    assert [layer.trainable for layer in tuned.layers] == [False, True, True, True, True]
    pretrained = load_base(handle)
    np.testing.assert_array_equal(tuned.layers[0].get_weights()[0], pretrained.layers[0].get_weights()[0])
    assert not np.array_equal(tuned.layers[2].get_weights()[0], pretrained.layers[2].get_weights()[0])
    assert result.warmup_epochs == 2 and result.epochs_run == 3
    assert "2 epochs of the head with the base frozen, then 1 epochs of fine-tuning" in result.budget()
    assert result.compiled_by == "student" and float(result.model.optimizer.learning_rate) == pytest.approx(1e-3)


def test_stub_fails_every_check_cleanly(graded):
    report = graded("transfer", "stub")
    assert report.score == 0 and all("not done yet" in c.message for c in report.checks)
    assert "build_finetune_model()" in by_name(report)["fine_tuning"].message


def test_base_must_be_frozen_for_extraction_and_unfrozen_for_fine_tuning(checked):
    checks = by_name(checked("transfer", "unfrozen", ["base_frozen", "fine_tuning"]))
    assert checks["base_frozen"].message.startswith("Expected the base frozen for feature extraction")
    assert checks["fine_tuning"].message.startswith("build_finetune_model(base): expected the base unfrozen")


@pytest.mark.slow
def test_a_model_without_the_base_is_told_so_and_trained_as_it_is(graded):
    checks = by_name(graded("transfer", "scratch"))
    assert checks["base_used"].message.startswith("Expected the pretrained base as one layer of the model, named "
                                                  "'pretrained_base'")
    assert "Received: Conv2D('conv2d'), MaxPooling2D" in checks["base_used"].message
    assert "trained by the grader on 500 images" in checks["accuracy"].message  # measured honestly either way
    assert checks["gain"].message == checks["base_used"].message  # no base, no gain to measure


def test_functional_use_of_the_base_and_a_wrong_head(checked):
    checks = by_name(checked("transfer", "functional", ["base_used", "base_frozen", "head_new"]))
    assert all(c.passed for c in checks.values()), checks
    assert "a new head of 2 layer(s)" in checks["head_new"].message
    checks = by_name(checked("transfer", "wrong_classes", ["head_new", "accuracy"]))
    assert checks["head_new"].message.endswith("expected 5 units, one per class of the target task. Received: 10.")
    assert checks["accuracy"].message == "Expected output shape (None, 5): one score per class. Received: (None, 10)."


@pytest.mark.slow
def test_grader_restores_the_pretrained_weights_itself(course, handle, tmp_path):
    """Weights of the base in the student's file are not trusted: zeroed ones are replaced from the handle."""
    import keras

    base = load_base(handle)
    model = keras.Sequential([keras.Input((28, 28, 1)), base, keras.layers.Dense(5, activation="softmax")])
    base.set_weights([np.zeros_like(w) for w in base.get_weights()])
    path = tmp_path / "tampered.keras"
    model.save(path)
    checks = by_name(grade(course, "transfer", Submission.of_model("build_model", path), profile="smoke", seed=1,
                           only=["accuracy"]))
    assert checks["accuracy"].passed, checks["accuracy"].message


def test_load_base_rebuilds_native_keras_layers_from_the_saved_model(handle):
    import keras
    import tensorflow_hub as hub

    base = load_base(handle)
    assert isinstance(base, keras.Sequential) and base.trainable is False
    assert [type(layer).__name__ for layer in base.layers] == ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten"]
    manifest = json.loads((REPO / "solutions/transfer/pretrained_base" / MANIFEST).read_text())
    assert weights_digest(base) == manifest["weights_sha256"]  # every variable found by name and copied
    x = np.random.default_rng(0).random((4, 28, 28, 1), dtype="float32")
    saved = hub.load(handle)  # kept referenced: its functions need its variables alive
    served = saved.serve(x)  # the SavedModel's own function, through tensorflow_hub
    np.testing.assert_allclose(keras.ops.convert_to_numpy(base(x)), served.numpy(), rtol=1e-5, atol=1e-5)


def test_the_loaded_base_fine_tunes_with_adam(handle):
    """The TFSMLayer trap (Adam fails on ':0' variable names) does not apply: the base is native Keras."""
    import keras

    base = load_base(handle)
    base.trainable = True
    before = [w.copy() for w in base.get_weights()]
    model = keras.Sequential([keras.Input((28, 28, 1)), base, keras.layers.Dense(5, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    model.fit(rng.random((64, 28, 28, 1), dtype="float32"), rng.integers(0, 5, 64), epochs=1, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(before, base.get_weights(), strict=True))


def test_released_copy_is_the_same_base(course):
    source = REPO / "solutions/transfer/pretrained_base"
    for path in source.rglob("*"):
        if path.is_file():
            assert (REPO / "exercises/transfer/pretrained_base" / path.relative_to(source)).read_bytes() == path.read_bytes()


@pytest.mark.slow
def test_pretrain_is_reproducible_and_records_how(course, tmp_path):
    spec = course.exercise("transfer").transfer.pretrain.model_copy(update={"images_per_class": 200, "epochs": 1})
    first = pretrain_base(spec, tmp_path / "one")
    second = pretrain_base(spec, tmp_path / "two")
    assert first["weights_sha256"] == second["weights_sha256"]
    assert first["images"] == 1000 and first["seed"] == 0 and first["source_classes"] == [0, 3, 5, 7, 8]
    assert weights_digest(load_base(str(tmp_path / "two"))) == first["weights_sha256"]
    assert json.loads((tmp_path / "one" / KERAS_CONFIG).read_text())["class_name"] == "Sequential"
    assert json.loads((tmp_path / "one" / MANIFEST).read_text())["versions"]["keras"]


def test_missing_base_says_how_to_build_it(tmp_path):
    with pytest.raises(ConfigError, match="The pretrained base is missing") as info:
        load_base(str(tmp_path / "nowhere"))
    assert "deepgrade pretrain transfer" in str(info.value.tip)


def test_a_saved_model_without_keras_config_is_wrapped_frozen(tmp_path):
    """What an online feature vector gives: a plain SavedModel. It loads for exploring, frozen."""
    import keras

    plain = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    plain.export(str(tmp_path / "plain"), verbose=False)
    base = load_base(str(tmp_path / "plain"))
    assert [type(layer).__name__ for layer in base.layers] == ["TFSMLayer"] and not base.trainable_weights


@pytest.mark.parametrize("classes, message", [
    ([0, 1, 2, 4, 6], r"disjoint .*Received: both have \[0\]"),
    ([1, 2, 12], r"transfer.classes: expected distinct Fashion-MNIST labels 0-9. Received: \[1, 2, 12\]"),
])
def test_target_classes_are_checked_against_the_source_task(edited_course, classes, message):
    from deepgrade.course import load_course

    def edit(data):
        data["exercises"]["transfer"]["transfer"]["classes"] = classes

    with pytest.raises(ConfigError, match=message):
        load_course(edited_course(edit))
