"""``model.fit`` without its per-batch Python: one compiled call per epoch on the JAX backend.

:func:`fit` trains an already compiled Keras 3 model as ``model.fit(x, y, epochs=..., batch_size=...,
shuffle=True, validation_data=..., callbacks=..., verbose=0)`` does, and returns the same history. On the JAX
backend the data goes to the device once (``jax.device_put``) and, on a GPU, each epoch is one jitted call:
the epoch's full batches run inside ``jax.lax.scan`` over the model's own pure ``train_step(state, data)``,
each batch gathered from the on-device arrays by the epoch's shuffled order inside the scan, then the last
partial batch (as fit trains it) in the same call. On a CPU (``loop="auto"``) each batch is its own compiled
call instead (the same step, the data still on the device): XLA:CPU runs a convolution's gradient inside a
loop about 60 times slower than outside one, and a CPU step is long enough for a call to cost nothing.

The student's compiled loss, optimizer, metrics, regularization losses, dropout and seed generators act
exactly as in fit; only the order of the shuffle differs (seeded here by ``(seed, epoch)``, by NumPy's
global generator in fit). At each epoch's end the state goes back into the model's variables, so callbacks
see the model as fit shows it to them (EarlyStopping reads and restores its weights and sets
``model.stop_training``; :mod:`.progress` reads the epoch's logs).

Anything the fast path cannot do as fit would (another backend, a callback with per-batch hooks, a step that
does not compile) falls back to plain ``model.fit`` with the same arguments; the returned :class:`History`
says which ran and why (and the module's logger says it too). A student's own error is never hidden: a model
whose step fails to compile falls back, and fit raises the same error where the grader expects it.

Several grader processes sharing one GPU: :func:`gpu_env` is the environment each one needs.
Importing this module imports no backend.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import weakref
from collections.abc import Sequence

import numpy as np

from ..errors import first_line

log = logging.getLogger(__name__)
_PREDICTORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> its jitted class prediction

FAST = "fastfit"  # History.method of a fast-path run
PLAIN = "fit"     # History.method of a fall-back to model.fit
BATCH_HOOKS = ("on_batch_begin", "on_batch_end", "on_train_batch_begin", "on_train_batch_end",
               "on_test_batch_begin", "on_test_batch_end")
LOOPS = ("auto", "scan", "step")
DEVICE_SHARE = 0.5  # the data may take at most this share of the device's memory (the rest: model, activations)


class History(dict):
    """``{metric name: [value per epoch]}``, as ``model.fit(...).history`` holds it, and how it was trained.

    ``method``: :data:`FAST` or :data:`PLAIN`; ``reason``: why the fast path was not taken ("" when it was);
    ``loop``: the fast path's ``"scan"`` (one call per epoch) or ``"step"`` (one per batch); ``compile_seconds``:
    its tracing and compiling, included in the caller's wall time (NaN for fit).
    """

    def __init__(self, history: dict, *, method: str, reason: str = "", loop: str = "",
                 compile_seconds: float = math.nan):
        super().__init__({key: [float(v) for v in values] for key, values in history.items()})
        self.method, self.reason, self.loop, self.compile_seconds = method, reason, loop, compile_seconds


def gpu_env(workers: int = 1, *, compilation_cache: str | None = None) -> dict[str, str]:
    """Environment for one of ``workers`` grader processes sharing a GPU (add it to the process's environment).

    JAX claims 75% of a GPU's memory when it starts: with preallocation off each process takes what it uses, and
    with several workers each is capped at its share of 90% of the memory (XLA's allocator treats the fraction
    as a limit when it does not preallocate), so one large model fails its own grade, not its neighbours'.
    TensorFlow grows its memory the same way.

    ``compilation_cache``: a folder for JAX's persistent compilation cache (grades of the same architecture,
    compile settings and budget then load the compiled epoch instead of compiling it: most of a GPU grade's
    time). Every grade that can write to it can also poison it for the grades after it (an executable is
    code), which the per-grade process of :mod:`.serve` otherwise rules out: fill it from trusted runs (the
    reference solutions) and give the grader processes a read-only copy, or leave it off.
    """
    env = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}
    if workers > 1:
        share = f"{0.9 / workers:.3f}"
        env.update(XLA_CLIENT_MEM_FRACTION=share, XLA_PYTHON_CLIENT_MEM_FRACTION=share)  # new name, old name
    if compilation_cache:
        env.update(JAX_COMPILATION_CACHE_DIR=str(compilation_cache), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    return env


def unavailable(model, callbacks: Sequence = ()) -> str:
    """Why :func:`fit` would fall back to ``model.fit`` for ``model`` and ``callbacks``; "" when it would not."""
    import keras

    backend = keras.backend.backend()
    if backend != "jax":
        return f"the fast path runs on the JAX backend; this process runs Keras on {backend}"
    if not getattr(model, "compiled", False) or getattr(model, "optimizer", None) is None:
        return "the model is not compiled"
    if keras.config.is_nnx_enabled():
        return "Flax NNX is enabled"
    if keras.distribution.distribution() is not None:
        return "a Keras distribution is set"
    for callback in callbacks:
        hooks = [hook for hook in BATCH_HOOKS  # Keras marks Callback's own no-op hooks with _is_default
                 if hasattr(callback, hook) and not getattr(getattr(callback, hook), "_is_default", False)]
        if hooks:
            return f"callback {type(callback).__name__} needs per-batch calls ({', '.join(hooks)})"
    return ""


def available(model, callbacks: Sequence = ()) -> bool:
    """Whether :func:`fit` can train ``model`` without ``model.fit`` (see :func:`unavailable` for why not)."""
    return not unavailable(model, callbacks)


def fit(model, x, y, *, epochs: int, batch_size: int, validation_data=None, callbacks: Sequence = (), seed: int,
        initial_epoch: int = 0, loop: str = "auto") -> History:
    """Train ``model`` (compiled) as ``model.fit(x, y, ..., shuffle=True, verbose=0)`` would; its history.

    The shuffle of epoch ``e`` is seeded by ``(seed, e)``; dropout draws from the model's own seed generators
    (seed those with ``keras.utils.set_random_seed`` first, as for fit). ``loop``: ``"scan"`` (an epoch per
    compiled call), ``"step"`` (a batch per call) or ``"auto"`` (scan on an accelerator, step on a CPU).
    """
    if loop not in LOOPS:
        raise ValueError(f"Expected loop to be one of {', '.join(LOOPS)}. Received: loop={loop!r}")
    args = dict(epochs=epochs, batch_size=batch_size, validation_data=validation_data, callbacks=list(callbacks),
                initial_epoch=initial_epoch)
    reason = unavailable(model, callbacks) or _unsuitable_data(x, y, validation_data, batch_size)
    if not reason:
        try:
            trainer = _Trainer(model, x, y, int(batch_size), validation_data, loop)
        except Exception as exc:  # noqa: BLE001 - nothing ran yet: fit gets the untouched model (and its errors)
            _forget_traces(model)
            reason = f"the training step did not compile ({type(exc).__name__}: {first_line(exc)})"
        else:
            return trainer.run(epochs=epochs, callbacks=list(callbacks), seed=seed, initial_epoch=initial_epoch)
    log.info("fastfit: plain model.fit instead: %s", reason)
    history = model.fit(x, y, shuffle=True, verbose=0, **args)
    return History(history.history, method=PLAIN, reason=reason)


def predict_classes(model, x, batch_size: int = 1024) -> np.ndarray:
    """The highest-scoring class of each image in ``x``, as ``argmax(model.predict(x))``.

    On JAX: one compiled function per model and batch shape (the last batch padded), the batches dispatched
    back to back, only the classes copied back. Larger batches than predict's usual 1024 pay on a GPU.
    """
    import keras

    if keras.backend.backend() == "jax" and getattr(model, "built", False) and len(x):
        try:
            return _predict_classes_jax(model, x, batch_size)
        except Exception as exc:  # noqa: BLE001 - predict below says the same error if it is the model's
            _forget_traces(model)
            log.info("fastfit: plain model.predict instead: %s: %s", type(exc).__name__, first_line(exc))
    scores = model.predict(x, batch_size=batch_size, verbose=0)
    return np.asarray(keras.ops.convert_to_numpy(keras.ops.argmax(scores, axis=-1)))


# -- the JAX fast path ----------------------------------------------------------------------------------------

class _Trainer:
    """The compiled epoch (and validation) of one model on one data set, built before anything trains.

    Everything that can fail for reasons of this module (tracing the model's step, compiling it, placing the
    data) happens in the constructor, while the model is untouched, so :func:`fit` can still fall back.
    """

    def __init__(self, model, x, y, batch_size: int, validation_data, loop: str):
        import jax

        start = time.monotonic()
        self.model, self.batch_size = model, batch_size
        self.loop = loop if loop != "auto" else "step" if jax.default_backend() == "cpu" else "scan"
        x, y = _host(x), _host(y)
        self.n = len(x)
        model._symbolic_build(data_batch=(x[:batch_size], y[:batch_size]))  # builds metrics, loss and optimizer
        self.data = jax.device_put((x, y))
        order = jax.device_put(np.arange(self.n, dtype=np.int32))
        state = _state(model, training=True)
        scan, step, last = _train_functions(model, self.n, batch_size)
        full, rest = divmod(self.n, batch_size)
        compiled = lambda f, *args: jax.jit(f).lower(state, self.data, order, *args).compile()  # noqa: E731
        with tiled_max_pool(jax.default_backend() == "cpu"):
            self.scan = compiled(scan) if self.loop == "scan" else None
            self.step = compiled(step, np.int32(0)) if self.loop == "step" and full else None
            self.last = compiled(last) if self.loop == "step" and rest else None
        self.validation = None
        if validation_data is not None:
            x_val, y_val = (_host(part) for part in validation_data)
            self.validation_data = jax.device_put((x_val, y_val))
            self.validation = jax.jit(_evaluate_function(model, len(x_val), batch_size)).lower(
                _state(model, training=False), self.validation_data).compile()
        self.compile_seconds = time.monotonic() - start

    @property
    def steps(self) -> int:
        return -(-self.n // self.batch_size)

    def train_epoch(self, state, order):
        """One epoch of ``train_step`` over the data in ``order``: (state, the last step's logs)."""
        if self.scan is not None:
            return self.scan(state, self.data, order)
        logs = None
        if self.step is not None:
            for i in range(self.n // self.batch_size):
                state, logs = self.step(state, self.data, order, np.int32(i))
        if self.last is not None:
            state, logs = self.last(state, self.data, order)
        return state, logs

    def run(self, *, epochs: int, callbacks: list, seed: int, initial_epoch: int) -> History:
        import jax
        import keras

        model = self.model
        calls = keras.callbacks.CallbackList(callbacks, add_history=True, add_progbar=False, model=model,
                                             verbose=0, epochs=epochs, steps=self.steps)
        model.stop_training = False
        calls.on_train_begin()
        last: dict = {}
        finished = False
        try:
            for epoch in range(initial_epoch, epochs):
                model.reset_metrics()
                calls.on_epoch_begin(epoch)
                order = np.random.default_rng([seed % 2**63, epoch]).permutation(self.n).astype(np.int32)
                state, logs = self.train_epoch(_state(model, training=True), jax.device_put(order))
                _set_state(model, state)
                epoch_logs = _floats(model._get_metrics_result_or_logs(logs))
                if self.validation is not None:
                    model.reset_metrics()
                    calls.on_test_begin()
                    state, logs = self.validation(_state(model, training=False), self.validation_data)
                    _set_state(model, state)
                    val_logs = _floats(model._get_metrics_result_or_logs(logs))
                    calls.on_test_end(val_logs)
                    epoch_logs.update({f"val_{name}": value for name, value in val_logs.items()})
                calls.on_epoch_end(epoch, epoch_logs)
                last = epoch_logs
                if model.stop_training:
                    break
            finished = True
        finally:
            if epochs > 0 and isinstance(model.optimizer, keras.optimizers.Optimizer):
                model.optimizer.finalize_variable_values(model.trainable_weights)
            if finished:
                calls.on_train_end(logs=last)
        history = next(call for call in calls.callbacks if isinstance(call, keras.callbacks.History))
        return History(history.history, method=FAST, loop=self.loop, compile_seconds=self.compile_seconds)


@contextlib.contextmanager
def tiled_max_pool(active: bool = True):
    """While tracing: Keras's JAX max pooling, for windows that tile the input (``strides == pool_size``,
    ``"valid"`` padding, channels last: every CNN of the course), as a reshape and a max over each window's axes.

    The same values as ``lax.reduce_window``; the gradient differs in how XLA:CPU computes it: reduce_window's
    (a select-and-scatter) is a scalar loop there, half of the course CNN's training step (batches of 128 on a
    2-core CPU: 0.18 s a step, 0.10 s with this), the reshape's an elementwise comparison. Where a
    window holds its maximum twice the gradient is shared between them instead of given to the first; after a
    ReLU only zeros tie, whose gradient the ReLU stops anyway. Other windows go to Keras's own function.
    """
    if not active:
        yield
        return
    from jax import numpy as jnp
    from keras.src.backend.config import standardize_data_format
    from keras.src.backend.jax import nn

    keras_max_pool = nn.max_pool

    def max_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
        spatial = inputs.ndim - 2
        size = tuple(pool_size) if isinstance(pool_size, (tuple, list)) else (pool_size,) * spatial
        step = size if strides is None else tuple(strides) if isinstance(strides, (tuple, list)) else (strides,) * spatial
        if (spatial < 1 or len(size) != spatial or step != size or str(padding).lower() != "valid"
                or standardize_data_format(data_format) != "channels_last"):
            return keras_max_pool(inputs, pool_size, strides, padding, data_format)
        tiles = [(d // s, s) for d, s in zip(inputs.shape[1:-1], size, strict=True)]  # (windows, window) per axis
        kept = inputs[(slice(None), *(slice(0, n * s) for n, s in tiles), slice(None))]
        windows = kept.reshape(-1, *(k for tile in tiles for k in tile), inputs.shape[-1])
        return jnp.max(windows, axis=tuple(2 + 2 * i for i in range(spatial)))

    nn.max_pool = max_pool
    try:
        yield
    finally:
        nn.max_pool = keras_max_pool


def _train_functions(model, n: int, batch_size: int):
    """``model.train_step`` over the data in a given order: an epoch in one scan, (state, data, order) -> (state,
    logs); full batch ``i``, (state, data, order, i) -> (state, logs); the last partial batch, as fit trains it."""
    import jax
    from jax import numpy as jnp

    full, rest = divmod(n, batch_size)

    def step(state, data, order, i):
        index = jax.lax.dynamic_slice_in_dim(order, i * batch_size, batch_size)
        logs, state = model.train_step(state, _take(data, index))
        return state, logs

    def last(state, data, order):
        logs, state = model.train_step(state, _take(data, order[full * batch_size:]))
        return state, logs

    def scan(state, data, order):
        logs = None
        if full:
            state, logs = jax.lax.scan(lambda state, i: step(state, data, order, i), state, jnp.arange(full))
            logs = jax.tree.map(lambda values: values[-1], logs)
        if rest:
            state, logs = last(state, data, order)
        return state, logs

    return scan, step, last


def _evaluate_function(model, n: int, batch_size: int):
    """(state, (x, y)) -> (state, logs): ``model.test_step`` over the data in order, as evaluate runs it."""
    import jax
    from jax import numpy as jnp

    steps, rest = divmod(n, batch_size)

    def evaluate(state, data):
        logs = None
        if steps:
            def step(state, i):
                batch = jax.tree.map(lambda a: jax.lax.dynamic_slice_in_dim(a, i * batch_size, batch_size), data)
                logs, state = model.test_step(state, batch)
                return state, logs

            state, logs = jax.lax.scan(step, state, jnp.arange(steps))
            logs = jax.tree.map(lambda values: values[-1], logs)
        if rest:
            logs, state = model.test_step(state, jax.tree.map(lambda a: a[steps * batch_size:], data))
        return state, logs

    return evaluate


def _predict_classes_jax(model, x, batch_size: int) -> np.ndarray:
    """Batches of ``batch_size`` (the last one padded): one compile per model and batch shape, dispatched
    back to back; only the classes come back from the device."""
    import jax

    x = _host(x)
    classes = _PREDICTORS.get(model)
    if classes is None:
        classes = _PREDICTORS[model] = jax.jit(class_function(model))
    state = ([v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables])
    parts = []
    for start in range(0, len(x), batch_size):
        rows = x[start:start + batch_size]
        if len(rows) < batch_size:
            rows = np.concatenate([rows, np.zeros((batch_size - len(rows), *rows.shape[1:]), rows.dtype)])
        parts.append(classes(state, rows))
    return np.concatenate([np.asarray(part) for part in parts])[:len(x)].astype(np.int64)


def class_function(model):
    """``(state, rows) -> the highest-scoring class of each row``: the model's pure ``predict_step`` (``state``:
    its trainable and non-trainable values), to jit (or to vmap over many models' states: grader.seeds)."""
    from jax import numpy as jnp

    def classes(state, rows):
        scores, _ = model.predict_step(state, (rows,))
        return jnp.argmax(scores, axis=-1).astype(jnp.int32)

    return classes


def _take(data, index):
    import jax
    from jax import numpy as jnp

    return jax.tree.map(lambda a: jnp.take(a, index, axis=0), data)


def _state(model, *, training: bool) -> tuple:
    """The values ``train_step`` (training) or ``test_step`` takes, read from the model's variables."""
    values = lambda variables: [v.value for v in variables]  # noqa: E731
    if training:
        return (values(model.trainable_variables), values(model.non_trainable_variables),
                values(model.optimizer.variables), values(model.metrics_variables))
    return values(model.trainable_variables), values(model.non_trainable_variables), values(model.metrics_variables)


def _set_state(model, state: tuple) -> None:
    """Write a step's state back into the model's variables (what callbacks and evaluation then see)."""
    groups = [model.trainable_variables, model.non_trainable_variables]
    groups += [model.optimizer.variables, model.metrics_variables] if len(state) == 4 else [model.metrics_variables]
    for variables, values in zip(groups, state, strict=True):
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)


def _host(a) -> np.ndarray:
    """``a`` as a NumPy array, floats as Keras' floatx (fit's data adapter casts them the same way)."""
    import keras

    a = np.asarray(a)
    if np.issubdtype(a.dtype, np.floating) and a.dtype != np.dtype(keras.config.floatx()):
        a = a.astype(keras.config.floatx())
    return a


def _unsuitable_data(x, y, validation_data, batch_size: int) -> str:
    """Why the data cannot go through the fast path; "" when it can."""
    parts = {"x": x, "y": y}
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            return "validation_data is not an (x, y) pair"
        parts.update(x_val=validation_data[0], y_val=validation_data[1])
    if not all(isinstance(part, np.ndarray) for part in parts.values()):
        return "the data are not NumPy arrays"
    if len(x) != len(y) or not len(x) or (validation_data is not None and (
            len(validation_data[0]) != len(validation_data[1]) or not len(validation_data[0]))):
        return "x and y are empty or of different lengths"
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        return f"batch_size must be a positive integer. Received: batch_size={batch_size!r}"
    limit = _device_memory()
    size = sum(part.nbytes for part in parts.values())
    if limit and size > DEVICE_SHARE * limit:
        return f"the data ({size / 2**30:.1f} GiB) take more than half of the device's memory ({limit / 2**30:.1f} GiB)"
    return ""


def _device_memory() -> int:
    """Bytes the default device may allocate, where it says (GPUs do; CPUs do not: 0)."""
    import jax

    try:
        stats = jax.devices()[0].memory_stats() or {}
    except Exception:  # noqa: BLE001 - a device that keeps no statistics has no limit to keep to
        return 0
    return int(stats.get("bytes_limit", 0))


def _forget_traces(model) -> None:
    """A trace that failed inside ``compute_loss_and_updates`` may leave tracers in the model's loss override."""
    override = getattr(model, "_losses_override", None)
    if isinstance(override, list):
        override.clear()


def _floats(logs) -> dict[str, float]:
    return {name: float(np.asarray(value)) for name, value in dict(logs).items()}
