"""The trusted side: safe loading refuses code, training is seeded and reproducible, accuracy is computed here."""


import keras
import numpy as np
import pytest
from keras import layers

from conftest import edit_config
from deepgrade.course import Compile, Profile
from deepgrade.errors import StudentCodeError
from deepgrade.grader import check_io, load_model, train_and_evaluate
from deepgrade.grader.training import _fresh_copy
from deepgrade.protocol import inspect_archive

TINY = Profile(train_size=2000, epochs=1, batch_size=128)


def small():
    return keras.Sequential([keras.Input((28, 28, 1)), layers.Flatten(), layers.Dense(32, activation="relu"),
                             layers.Dense(10, activation="softmax")])


def saved(model, tmp_path, name="m.keras"):
    path = tmp_path / name
    model.save(path)
    return path


def test_lambda_layer_is_refused_before_loading(tmp_path):
    model = keras.Sequential([keras.Input((28, 28, 1)), layers.Lambda(lambda x: x * 2), layers.Flatten(),
                              layers.Dense(10)])
    with pytest.raises(StudentCodeError, match=r"contains a Lambda layer.*refuses it \(safe_mode\)"):
        load_model(saved(model, tmp_path))


@keras.saving.register_keras_serializable(package="Student")
class Doubler(layers.Layer):
    def call(self, x):
        return x * 2


def test_custom_layer_is_refused(tmp_path):
    model = keras.Sequential([keras.Input((28, 28, 1)), Doubler(), layers.Flatten(), layers.Dense(10)])
    with pytest.raises(StudentCodeError, match=r"not a built-in Keras object"):
        load_model(saved(model, tmp_path))


def test_foreign_module_in_config_is_refused(tmp_path):
    def to_os_system(config):
        config["config"]["layers"][1].update(module="os", class_name="system")

    path = edit_config(saved(small(), tmp_path), to_os_system)
    with pytest.raises(StudentCodeError, match=r"'system' from 'os', which is not a built-in Keras object"):
        inspect_archive(path)


def test_custom_class_disguised_as_keras_is_refused(tmp_path):
    model = keras.Sequential([keras.Input((28, 28, 1)), Doubler(), layers.Flatten(), layers.Dense(10)])
    def claim_keras(config):
        layer = config["config"]["layers"][1]
        assert layer["registered_name"] == "Student>Doubler"
        layer["module"] = "keras.layers"

    path = edit_config(saved(model, tmp_path), claim_keras)
    with pytest.raises(StudentCodeError, match=r"'Doubler' from 'Student>Doubler', which is not a built-in Keras object"):
        inspect_archive(path)


def test_garbage_file_is_a_clear_error(tmp_path):
    path = tmp_path / "m.keras"
    path.write_bytes(b"not a zip")
    with pytest.raises(StudentCodeError, match=r"not a valid \.keras file"):
        load_model(path)


def test_wrong_output_shape(tmp_path):
    model = keras.Sequential([keras.Input((28, 28, 1)), layers.Flatten(), layers.Dense(5)])
    with pytest.raises(StudentCodeError, match=r"Expected output shape \(None, 10\).*Received: \(None, 5\)"):
        check_io(load_model(saved(model, tmp_path)))


def test_wrong_input_shape(tmp_path):
    model = keras.Sequential([keras.Input((784,)), layers.Dense(10)])
    with pytest.raises(StudentCodeError, match=r"does not accept a batch of 28x28x1 images"):
        check_io(load_model(saved(model, tmp_path)))


def test_fresh_copy_reinitialises_weights_and_keeps_student_compile(tmp_path):
    model = small()
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss="sparse_categorical_crossentropy")
    loaded = load_model(saved(model, tmp_path))
    keras.utils.set_random_seed(7)
    fresh, by = _fresh_copy(loaded, Compile())
    assert by == "student"
    assert type(fresh.optimizer).__name__ == "SGD"
    assert np.isclose(float(fresh.optimizer.learning_rate), 0.05)
    assert not np.allclose(fresh.layers[1].get_weights()[0], loaded.layers[1].get_weights()[0])
    keras.utils.set_random_seed(7)
    again, _ = _fresh_copy(loaded, Compile())
    assert np.array_equal(fresh.layers[1].get_weights()[0], again.layers[1].get_weights()[0])


def test_uncompiled_model_gets_course_defaults(tmp_path):
    fresh, by = _fresh_copy(load_model(saved(small(), tmp_path)), Compile(optimizer="rmsprop"))
    assert by == "course" and type(fresh.optimizer).__name__ == "RMSprop"


def test_same_seed_same_grade(tmp_path):
    model = load_model(saved(small(), tmp_path))
    first = train_and_evaluate(model, TINY, Compile(), seed=11)
    second = train_and_evaluate(model, TINY, Compile(), seed=11)
    assert first.test_accuracy == second.test_accuracy
    assert first.final_loss == second.final_loss
    assert 0.5 < first.test_accuracy < 1.0


def test_one_hot_loss_is_supported(tmp_path):
    model = small()
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    result = train_and_evaluate(load_model(saved(model, tmp_path)), TINY, Compile(), seed=1)
    assert result.compiled_by == "student" and result.test_accuracy > 0.5


def test_unusable_compile_settings_are_the_students_error(tmp_path):
    model = small()
    model.compile(optimizer="adam", loss="ctc")  # scores label sequences: no labels of one class per image fit it
    with pytest.raises(StudentCodeError, match=r"^Expected a classification loss.*Received: loss='ctc'"):
        train_and_evaluate(load_model(saved(model, tmp_path)), TINY, Compile(), seed=1)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["mse"])  # mse of class indices
    with pytest.raises(StudentCodeError, match=r"Training failed with the model's compile settings"):
        train_and_evaluate(load_model(saved(model, tmp_path)), TINY, Compile(), seed=1)
