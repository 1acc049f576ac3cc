"""deepgrade.grader.fastfit: model.fit's semantics in one compiled call per epoch on JAX, model.fit elsewhere.

The backend is fixed when Keras is imported and this process runs Keras on TensorFlow, so the JAX cases run in
a child process (``KERAS_BACKEND=jax``, TensorFlow made unimportable there as on the GPU machine), one per
scenario of :data:`SCENARIOS`, each printing its findings as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from deepgrade.grader import fastfit

SCENARIOS = r'''
import json, sys
sys.modules["tensorflow"] = None  # as on the GPU machine: nothing here may need TensorFlow
import numpy as np
import keras
from keras import layers
from deepgrade.grader import data, fastfit


def mlp(loss="sparse_categorical_crossentropy", regularizer=None):
    model = keras.Sequential([
        keras.Input((28, 28, 1)), layers.Flatten(),
        layers.Dense(256, activation="relu", kernel_regularizer=regularizer), layers.Dropout(0.4),
        layers.Dense(256, activation="relu", kernel_regularizer=regularizer), layers.Dropout(0.4),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    return model


def subset(size, seed=0, held=1000, tested=None):
    train, test = data.load()
    order = np.random.default_rng(seed).permutation(len(train))
    keep, held = np.sort(order[:size]), np.sort(order[size:size + held])
    return train.x[keep], train.y[keep], train.x[held], train.y[held], test.x[:tested], test.y[:tested]


def test_accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, batch_size=1024, verbose=0), axis=-1) == y))


def accuracy():
    x, y, x_val, y_val, x_test, y_test = subset(5000)
    found = {}
    for seed in (1, 2):
        for method in ("fastfit", "fit"):
            keras.utils.set_random_seed(seed)
            model = mlp()
            args = dict(epochs=4, batch_size=128, validation_data=(x_val, y_val))
            if method == "fastfit":
                history = fastfit.fit(model, x, y, seed=seed, loop="scan", **args)  # the GPU's loop
                found[f"method-{seed}"] = history.method
                found[f"classes-{seed}"] = bool(np.array_equal(
                    fastfit.predict_classes(model, x_test),
                    np.argmax(model.predict(x_test, batch_size=1024, verbose=0), axis=-1)))
            else:
                history = model.fit(x, y, shuffle=True, verbose=0, **args).history
            found[f"{method}-{seed}"] = {"accuracy": test_accuracy(model, x_test, y_test), "keys": sorted(history),
                                         "epochs": len(history["loss"])}
    return found


def remainder():
    n = 300  # 2 full batches of 128 and one of 44
    x, y = np.eye(n, dtype="float32"), np.ones((n, 1), "float32")  # sample i moves weight i only
    found = {}
    for loop in ("scan", "step"):
        model = keras.Sequential([keras.Input((n,)), layers.Dense(1, use_bias=False, kernel_initializer="zeros")])
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", metrics=["mae"])
        first = fastfit.fit(model, x, y, epochs=1, batch_size=128, seed=0, loop=loop)
        moved = model.get_weights()[0][:, 0]
        history = fastfit.fit(model, x, y, epochs=3, batch_size=128, seed=0, initial_epoch=1, loop=loop)
        count = next(v for v in model.metrics_variables if v.path == "loss/count")
        found[loop] = {"method": first.method, "loop": history.loop, "untouched": int(np.sum(moved == 0)),
                       "in_last_batch": int(np.sum(np.isclose(moved, 0.1 * 2 / 44, rtol=1e-5))),
                       "iterations": int(model.optimizer.iterations), "count": float(count),
                       "keys": sorted(history), "epochs": len(history["loss"])}
    return found


def early_stopping():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 8)).astype("float32")
    y = (x.sum(axis=1) > 0).astype("int64")
    runs = {}
    for method in ("scan", "step", "fit"):
        keras.utils.set_random_seed(3)
        model = keras.Sequential([keras.Input((8,)), layers.Dense(16, activation="relu"),
                                  layers.Dense(2, activation="softmax")])
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        seen = {}
        record = keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: seen.__setitem__(epoch, model.get_weights()))
        # mode="max" on a falling loss: epoch 0 stays the best, so training stops after epoch 1 and restores epoch 0
        stop = keras.callbacks.EarlyStopping(monitor="loss", mode="max", patience=1, restore_best_weights=True)
        args = dict(epochs=10, batch_size=64, callbacks=[record, stop])
        if method == "fit":
            history = model.fit(x, y, shuffle=True, verbose=0, **args).history
        else:
            history = fastfit.fit(model, x, y, seed=0, loop=method, **args)
        final = model.get_weights()
        same = lambda a, b: all(np.array_equal(u, v) for u, v in zip(a, b))
        runs[method] = {"epochs": len(history["loss"]), "stopped_epoch": stop.stopped_epoch,
                        "restored": same(final, seen[0]), "last_differs": not same(final, seen[1]),
                        "loss": history["loss"]}
    return runs


def regularized():
    x, y, x_val, y_val, x_test, y_test = subset(2048, held=1024, tested=4096)  # whole batches: one shape each to compile
    runs = {}
    for method in ("fastfit", "fit"):
        keras.utils.set_random_seed(4)
        model = mlp(regularizer=keras.regularizers.L2(0.01))  # the penalty (about 6 at first) outweighs the loss
        penalty = float(sum(keras.ops.convert_to_numpy(loss) for loss in model.losses))
        if method == "fastfit":
            history = fastfit.fit(model, x, y, epochs=3, batch_size=128, seed=4, loop="scan")
            runs["method"] = history.method
        else:
            history = model.fit(x, y, epochs=3, batch_size=128, shuffle=True, verbose=0).history
        runs[method] = {"loss": history["loss"], "accuracy": test_accuracy(model, x_test, y_test),
                        "penalty": penalty}
    return runs


def categorical():
    x, y, x_val, y_val, x_test, y_test = subset(2048, held=1024, tested=4096)  # whole batches: one shape each to compile
    one_hot = lambda labels: np.eye(10, dtype="float32")[labels]
    runs = {}
    for method in ("fastfit", "fit"):
        keras.utils.set_random_seed(5)
        model = mlp(loss="categorical_crossentropy")
        args = dict(epochs=3, batch_size=128, validation_data=(x_val, one_hot(y_val)))
        if method == "fastfit":
            history = fastfit.fit(model, x, one_hot(y), seed=5, loop="scan", **args)
            runs["method"] = history.method
        else:
            history = model.fit(x, one_hot(y), shuffle=True, verbose=0, **args).history
        runs[method] = {"keys": sorted(history), "accuracy": test_accuracy(model, x_test, y_test)}
    return runs


def warmup():
    """The transfer grader's two fits: the head with the base frozen, then all of it compiled again."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    keras.utils.set_random_seed(6)
    base = keras.Sequential([keras.Input((8,)), layers.Dense(16), layers.BatchNormalization(),
                             layers.Activation("relu")], name="base")
    model = keras.Sequential([keras.Input((8,)), base, layers.Dense(2, activation="softmax")])
    snapshot = lambda: [np.array(w) for w in base.get_weights()]
    before = snapshot()
    base.trainable = False
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    frozen = fastfit.fit(model, x, y, epochs=2, batch_size=64, seed=0)
    after_frozen = snapshot()
    base.trainable = True
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    tuned = fastfit.fit(model, x, y, epochs=2, batch_size=64, seed=0)
    after = snapshot()
    same = lambda a, b: all(np.array_equal(u, v) for u, v in zip(a, b))
    return {"methods": [frozen.method, tuned.method], "frozen_kept": same(before, after_frozen),
            "tuned_moved": not same(after_frozen, after), "iterations": int(model.optimizer.iterations)}


def fallbacks():
    x = np.random.default_rng(0).normal(size=(100, 4)).astype("float32")
    y = np.zeros(100, "int64")
    model = keras.Sequential([keras.Input((4,)), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    batches = []
    hooked = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: batches.append(batch))
    history = fastfit.fit(model, x, y, epochs=1, batch_size=32, seed=0, callbacks=[hooked])
    found = {"hooked": [history.method, history.reason, len(batches)], "available": fastfit.available(model),
             "auto": fastfit.fit(model, x, y, epochs=1, batch_size=32, seed=0).loop}
    errors = []
    for method in ("fastfit", "fit"):  # targets of the wrong shape for the loss
        wrong = keras.Sequential([keras.Input((4,)), layers.Dense(3, activation="softmax")])
        wrong.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        args = dict(epochs=1, batch_size=32)
        try:
            if method == "fastfit":
                fastfit.fit(wrong, x, np.zeros((100, 7), "float32"), seed=0, **args)
            else:
                wrong.fit(x, np.zeros((100, 7), "float32"), verbose=0, **args)
            errors.append("")
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    found["student_error"] = errors
    return found


def pooling():
    """fastfit's tiled max pooling: Keras's values and gradient where windows tile the input, Keras's own
    function elsewhere, and Keras's function back afterwards (also after an error)."""
    import jax
    from keras.src.backend.jax import nn

    rng = np.random.default_rng(0)
    keras_pool = nn.max_pool
    cases = {"2d": ((4, 13, 13, 3), (2, 2), (2, 2), "valid"), "2d_3x3": ((2, 12, 9, 2), 3, 3, "valid"),
             "1d": ((3, 11, 5), (2,), (2,), "valid"), "3d": ((2, 6, 7, 5, 2), (2, 2, 2), (2, 2, 2), "valid"),
             "strided": ((2, 13, 13, 3), (3, 3), (2, 2), "valid"), "same": ((2, 13, 13, 3), (2, 2), (2, 2), "same")}
    found = {}
    for name, (shape, size, strides, padding) in cases.items():  # strides always given, as the layers give them
        x = rng.normal(size=shape).astype("float32")
        pooled = lambda f: (lambda x: f(x, size, strides, padding, "channels_last"))
        loss = lambda f: (lambda x: (pooled(f)(x) ** 2).sum())
        want, want_grad = keras_pool(x, size, strides, padding), jax.grad(loss(keras_pool))(x)
        with fastfit.tiled_max_pool():
            ours = nn.max_pool
            got, got_grad = jax.jit(pooled(ours))(x), jax.jit(jax.grad(loss(ours)))(x)
            keras_op = "reduce_window" in str(jax.make_jaxpr(jax.grad(loss(ours)))(x))
        found[name] = {"shape": [list(want.shape), list(got.shape)], "equal": bool(np.array_equal(want, got)),
                       "grad": float(np.abs(np.asarray(want_grad) - np.asarray(got_grad)).max()),
                       "replaced": ours is not keras_pool, "keras_op": keras_op}
    try:
        with fastfit.tiled_max_pool():
            raise RuntimeError("inside")
    except RuntimeError:
        pass
    with fastfit.tiled_max_pool(False):
        found["inactive_kept"] = nn.max_pool is keras_pool
    found["restored"] = nn.max_pool is keras_pool
    return found


found = {}
for name in sys.argv[1:]:
    keras.backend.clear_session()
    found[name] = globals()[name]()
print(json.dumps(found))
'''

QUICK = ("remainder", "early_stopping", "regularized", "categorical", "warmup", "fallbacks", "pooling")


def _run_scenarios(*names: str) -> dict:
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", SCENARIOS, *names], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def quick():
    """The quick scenarios, run in one JAX process (one Keras and JAX start for all of them)."""
    return _run_scenarios(*QUICK)


def jax_scenario(name: str, ran: dict | None = None) -> dict:
    return ran[name] if ran is not None else _run_scenarios(name)[name]


@pytest.mark.slow  # four trainings of 5,000 images (about 30 s on 2 cores)
def test_fastfit_reaches_fits_accuracy_with_fits_history_keys():
    found = jax_scenario("accuracy")
    assert found["method-1"] == found["method-2"] == "fastfit"
    assert found["classes-1"] and found["classes-2"]  # predict_classes is argmax(model.predict)
    fast = [found[f"fastfit-{seed}"] for seed in (1, 2)]
    plain = [found[f"fit-{seed}"] for seed in (1, 2)]
    for a, b in zip(fast, plain, strict=True):
        assert a["keys"] == b["keys"] == ["accuracy", "loss", "val_accuracy", "val_loss"]
        assert a["epochs"] == b["epochs"] == 4
        assert min(a["accuracy"], b["accuracy"]) > 0.78
        assert abs(a["accuracy"] - b["accuracy"]) < 0.04  # one seed: the shuffles differ
    mean = lambda runs: float(np.mean([run["accuracy"] for run in runs]))  # noqa: E731
    assert abs(mean(fast) - mean(plain)) < 0.02, (fast, plain)


def test_every_sample_every_epoch_the_last_partial_batch_included(quick):
    for loop, found in jax_scenario("remainder", quick).items():
        assert found["method"] == "fastfit" and found["loop"] == loop
        assert found["untouched"] == 0          # every one of the 300 samples trained in the first epoch
        assert found["in_last_batch"] == 44     # 44 of them in a batch of 44 (the mean of 44, not of 128)
        assert found["iterations"] == 3 * 3     # ceil(300 / 128) steps in each of 3 epochs (1, then 2 more)
        assert found["count"] == 300            # metrics reset each epoch: the last epoch saw 300 samples
        assert found["keys"] == ["loss", "mae"] and found["epochs"] == 2  # initial_epoch=1 of 3


def test_early_stopping_stops_and_restores_as_in_fit(quick):
    runs = jax_scenario("early_stopping", quick)
    for method in ("scan", "step", "fit"):
        run = runs[method]
        assert run["loss"][1] < run["loss"][0], run  # the premise: loss fell, so epoch 0 stayed the best
        assert run["epochs"] == 2 and run["stopped_epoch"] == 1, (method, run)
        assert run["restored"] and run["last_differs"], (method, run)


def test_l2_regularized_model_with_dropout_trains_with_its_penalty(quick):
    runs = jax_scenario("regularized", quick)
    assert runs["method"] == "fastfit"
    fast, plain = runs["fastfit"], runs["fit"]
    assert fast["penalty"] > 3  # the L2 term dominates the first epoch's loss: leaving it out would show
    assert abs(fast["loss"][0] - plain["loss"][0]) < 0.1 * plain["loss"][0], (fast, plain)
    assert fast["loss"][-1] < fast["loss"][0]
    assert fast["accuracy"] > 0.6 and abs(fast["accuracy"] - plain["accuracy"]) < 0.06, (fast, plain)


def test_categorical_crossentropy_with_one_hot_targets(quick):
    runs = jax_scenario("categorical", quick)
    assert runs["method"] == "fastfit"
    assert runs["fastfit"]["keys"] == runs["fit"]["keys"] == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert runs["fastfit"]["accuracy"] > 0.7 and abs(runs["fastfit"]["accuracy"] - runs["fit"]["accuracy"]) < 0.05


def test_a_frozen_base_then_fine_tuning_as_the_transfer_grader_trains(quick):
    found = jax_scenario("warmup", quick)
    assert found["methods"] == ["fastfit", "fastfit"]
    assert found["frozen_kept"]     # weights and BatchNorm statistics of the frozen base did not move
    assert found["tuned_moved"]     # compiled again with it trainable, they did
    assert found["iterations"] == 2 * 4  # the second compile's fresh optimizer: 2 epochs of 4 batches


def test_falls_back_for_batch_hooks_and_leaves_students_errors_to_fit(quick):
    found = jax_scenario("fallbacks", quick)
    method, reason, batches = found["hooked"]
    assert method == "fit" and "LambdaCallback" in reason and "on_train_batch_end" in reason
    assert batches == 4  # fit called the hook: ceil(100 / 32) batches
    assert found["available"] is True
    assert found["auto"] == "step"  # on a CPU: XLA:CPU compiles a convolution's gradient in a loop slowly
    assert found["student_error"][0] == found["student_error"][1] != ""  # the same error fit raises


def test_max_pooling_that_tiles_its_input_is_a_reshape_with_kerass_values_and_gradient(quick):
    found = jax_scenario("pooling", quick)
    for name in ("2d", "2d_3x3", "1d", "3d", "strided", "same"):
        case = found[name]
        assert case["replaced"] and case["equal"] and case["shape"][0] == case["shape"][1], (name, case)
        assert case["grad"] == 0.0, (name, case)  # random floats: no window holds its maximum twice
        assert case["keras_op"] == (name in ("strided", "same")), (name, case)  # only windows that tile: a reshape
    assert found["same"]["shape"][0][1:3] == [7, 7]  # "same" padding went to Keras's function (a reshape gives 6)
    assert found["restored"] and found["inactive_kept"]


def test_on_tensorflow_it_is_model_fit():
    import keras

    assert keras.backend.backend() == "tensorflow"
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(50, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    assert not fastfit.available(model) and "tensorflow" in fastfit.unavailable(model)
    history = fastfit.fit(model, x, y, epochs=2, batch_size=16, validation_data=(x[:10], y[:10]), seed=0)
    assert history.method == "fit" and "tensorflow" in history.reason
    assert sorted(history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert all(len(values) == 2 and all(isinstance(v, float) for v in values) for values in history.values())
    assert int(model.optimizer.iterations) == 2 * 4
    with pytest.raises(ValueError, match="loop"):
        fastfit.fit(model, x, y, epochs=1, batch_size=16, seed=0, loop="unrolled")


def test_importing_the_data_the_course_and_fastfit_needs_no_tensorflow():
    code = ("import sys\n"
            "import deepgrade.grader.data, deepgrade.course, deepgrade.grader.fastfit\n"
            "deepgrade.course.load_course()\n"
            "deepgrade.grader.data.load()\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras'))\n"
            "assert not bad, bad\n")
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.parametrize("workers", [1, 3])
def test_gpu_env_lets_workers_share_a_gpu(workers):
    env = fastfit.gpu_env(workers, compilation_cache="/tmp/jax-cache")
    assert env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    assert env["JAX_COMPILATION_CACHE_DIR"] == "/tmp/jax-cache"
    if workers == 1:
        assert "XLA_CLIENT_MEM_FRACTION" not in env
    else:
        assert float(env["XLA_CLIENT_MEM_FRACTION"]) * workers <= 0.9
    assert all(isinstance(value, str) for value in env.values())
