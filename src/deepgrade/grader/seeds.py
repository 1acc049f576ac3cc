"""Many seeds of one model trained at once: one program over a seed axis (``jax.vmap``), for calibration.

:func:`train_many` gives, for each seed, what ``training.train_and_evaluate(model, profile, defaults, seed,
task=task)`` gives on the JAX backend: the same fresh copy (``seed_everything`` then ``clone_model``, copy by
copy, in the same order of draws), the same training subset and monitor set, the same shuffle (fastfit's,
seeded by ``(seed + 3, epoch)``), the same dropout draws (each copy's own seed generators are part of its
state) and the same evaluation. Only the arithmetic is batched: every copy's variables, optimizer state, metric
state and data order get a leading seed axis, and fastfit's own ``train_step`` loop runs under ``jax.vmap``.
A seed's result therefore does not depend on the seeds it trained beside, up to float rounding
(``tests/test_seeds.py`` trains a seed alone and in company and compares).

:func:`together` makes every ``train_and_evaluate`` call inside it batched: the first call for one of its
seeds trains all of them for that call's arguments and keeps the others' results for their own grades, so a
grade runs unchanged (its checks, its messages, its retry rule) on a training done in company.

What this does not batch (early stopping or a validation split from ``fit_options()``, a warm-up, a base the
grader restores, another backend) :func:`unbatchable` names; those calls train one seed at a time, as always.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

BATCHED = "fastfit-seeds"  # Training.method of a seed trained in company
PREDICT_ROWS = 4096       # rows per compiled prediction (as training.predicted_classes asks fastfit for)


def unbatchable(options=None, prepare=None, warmup=None) -> str:
    """Why a ``train_and_evaluate`` call with these arguments cannot train in company; "" when it can."""
    import keras

    if keras.backend.backend() != "jax":
        return f"seeds train together on the JAX backend; this process runs Keras on {keras.backend.backend()}"
    if prepare is not None:
        return "the grader restores a pretrained base into each copy"
    if warmup is not None:
        return "the training starts with a warm-up of the head"
    if options is not None and (options.early_stopping or options.validation_split):
        return "fit_options() asks for early stopping or a validation split (each seed would stop on its own)"
    return ""


@dataclass
class _Copy:
    seed: int
    model: Any
    compiled_by: str
    x: np.ndarray
    y: np.ndarray        # the labels
    targets: np.ndarray  # as the loss takes them
    x_test: np.ndarray
    y_test: np.ndarray
    x_mon: np.ndarray
    t_mon: np.ndarray
    monitored_on: str


def _copies(model, profile, defaults, seeds, task) -> list[_Copy]:
    """Each seed's fresh copy and data, made exactly as train_and_evaluate makes them (one seed after another)."""
    from . import fastfit
    from .labels import label_form
    from .labels import targets as label_targets
    from .training import _fresh_copy, seed_everything, training_data

    copies = []
    for seed in seeds:
        seed_everything(seed)
        x, y, x_test, y_test, x_mon, y_mon, monitored_on = training_data(profile, seed, task, monitor=True)
        fresh, compiled_by = _fresh_copy(model, defaults)
        form = label_form(fresh)
        t, t_mon = (label_targets(labels, form, task.num_classes) for labels in (y, y_mon))
        x, t, x_mon, t_mon = (fastfit._host(a) for a in (x, t, x_mon, t_mon))
        fresh._symbolic_build(data_batch=(x[:profile.batch_size], t[:profile.batch_size]))  # as fastfit builds it
        copies.append(_Copy(seed, fresh, compiled_by, x, y, t, x_test, y_test, x_mon, t_mon, monitored_on))
    return copies


def _shared(arrays: list[np.ndarray]):
    """(the array, None) when every seed has the same one (the whole training set), else (stacked, 0)."""
    first = arrays[0]
    if all(a is first or (a.shape == first.shape and np.array_equal(a, first)) for a in arrays[1:]):
        return first, None
    return np.stack(arrays), 0


def _stack(trees):
    import jax
    from jax import numpy as jnp

    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def _pick(tree, i: int):
    import jax

    return jax.tree.map(lambda leaf: leaf[i], tree)


def _floats(logs, i: int) -> dict[str, float]:
    return {name: float(np.asarray(value)[i]) for name, value in dict(logs).items()}


def train_many(model, profile, defaults, seeds: list[int], *, task=None, loop: str = "auto") -> dict[int, Any]:
    """``{seed: Training}`` for ``seeds``, trained together (see the module); ``loop`` as in fastfit.fit."""
    import jax

    from . import fastfit
    from .training import Task, Training, _canonical, confusion_matrix

    task = task or Task()
    seeds = list(seeds)
    start = time.monotonic()
    copies = _copies(model, profile, defaults, seeds, task)
    head = copies[0].model
    batch, epochs = int(profile.batch_size), int(profile.epochs)
    n = len(copies[0].x)
    if any(len(c.x) != n for c in copies):
        raise ValueError("the seeds' training sets differ in size: they cannot train together")
    loop = loop if loop != "auto" else "step" if jax.default_backend() == "cpu" else "scan"

    x, x_axis = _shared([c.x for c in copies])
    t, t_axis = _shared([c.targets for c in copies])
    x_mon, m_axis = _shared([c.x_mon for c in copies])
    t_mon, tm_axis = _shared([c.t_mon for c in copies])
    data, monitor = jax.device_put((x, t)), jax.device_put((x_mon, t_mon))
    data_axes, monitor_axes = (x_axis, t_axis), (m_axis, tm_axis)

    head.reset_metrics()
    fresh_metrics = _stack([[v.value for v in c.model.metrics_variables] for c in copies])
    state = _stack([fastfit._state(c.model, training=True) for c in copies])

    scan, step, last = fastfit._train_functions(head, n, batch)
    full, rest = divmod(n, batch)
    with fastfit.tiled_max_pool(jax.default_backend() == "cpu"):
        if loop == "scan":
            epoch_fn = jax.jit(jax.vmap(scan, in_axes=(0, data_axes, 0)))
        else:
            step_fn = jax.jit(jax.vmap(step, in_axes=(0, data_axes, 0, None))) if full else None
            last_fn = jax.jit(jax.vmap(last, in_axes=(0, data_axes, 0))) if rest else None
        evaluate = jax.jit(jax.vmap(fastfit._evaluate_function(head, len(copies[0].x_mon), batch),
                                    in_axes=(0, monitor_axes)))

        histories: list[dict[str, list[float]]] = [{} for _ in copies]
        for epoch in range(epochs):
            state = (state[0], state[1], state[2], fresh_metrics)
            order = jax.device_put(np.stack([np.random.default_rng([(c.seed + 3) % 2**63, epoch]).permutation(n)
                                             for c in copies]).astype(np.int32))
            if loop == "scan":
                state, logs = epoch_fn(state, data, order)
            else:
                logs = None
                for i in range(full):
                    state, logs = step_fn(state, data, order, np.int32(i))
                if rest:
                    state, logs = last_fn(state, data, order)
            _, val_logs = evaluate((state[0], state[1], fresh_metrics), monitor)
            for i, history in enumerate(histories):
                epoch_logs = _floats(logs, i)
                epoch_logs.update({f"val_{k}": v for k, v in _floats(val_logs, i).items()})
                for key, value in epoch_logs.items():
                    history.setdefault(key, []).append(value)
        jax.block_until_ready(state)
        seconds = time.monotonic() - start

        start = time.monotonic()
        classes = jax.jit(jax.vmap(_classes(head), in_axes=(0, None)))
        classes_own = jax.jit(jax.vmap(_classes(head), in_axes=(0, 0)))
        weights = (state[0], state[1])
        test_x = _shared([c.x_test for c in copies])
        predicted_test = _predict(classes if test_x[1] is None else classes_own, weights, test_x[0], test_x[1])
        predicted_train = _predict(classes if x_axis is None else classes_own, weights, x, x_axis)
    evaluate_seconds = time.monotonic() - start

    results = {}
    for i, c in enumerate(copies):
        fastfit._set_state(c.model, _pick(state, i))
        c.model.optimizer.finalize_variable_values(c.model.trainable_weights)
        history = _canonical(histories[i])
        losses = history.get("loss", [float("nan")])
        predicted = predicted_test[i]
        results[c.seed] = Training(
            test_accuracy=float(np.mean(predicted == c.y_test)),
            train_accuracy=float(np.mean(predicted_train[i] == c.y)),
            train_size=n, epochs=epochs, seconds=seconds / len(copies),
            evaluate_seconds=evaluate_seconds / len(copies), compiled_by=c.compiled_by,
            final_loss=float(losses[-1]), epochs_run=len(losses), model=c.model, history=history,
            confusion=confusion_matrix(c.y_test, predicted, task.num_classes), monitored_on=c.monitored_on,
            method=BATCHED)
    return results


def _classes(model):
    from jax import numpy as jnp

    def classes(weights, rows):
        scores, _ = model.predict_step(weights, (rows,))
        return jnp.argmax(scores, axis=-1).astype(jnp.int32)

    return classes


def _predict(fn, weights, x: np.ndarray, axis) -> np.ndarray:
    """Every seed's classes of ``x`` (shared, or one per seed on ``axis`` 0), :data:`PREDICT_ROWS` rows per call,
    the last call padded, as fastfit.predict_classes does it for one model."""
    rows = x.shape[0] if axis is None else x.shape[1]
    parts = []
    for start in range(0, rows, PREDICT_ROWS):
        part = x[start:start + PREDICT_ROWS] if axis is None else x[:, start:start + PREDICT_ROWS]
        short = PREDICT_ROWS - (part.shape[0] if axis is None else part.shape[1])
        if short:
            pad = [(0, short)] + [(0, 0)] * (part.ndim - 1) if axis is None else \
                [(0, 0), (0, short)] + [(0, 0)] * (part.ndim - 2)
            part = np.pad(part, pad)
        parts.append(fn(weights, part))
    return np.concatenate([np.asarray(p) for p in parts], axis=1)[:, :rows].astype(np.int64)


# -- grades trained in company ---------------------------------------------------------------------------------

_ACTIVE: list["_Together"] = []


class _Together:
    def __init__(self, seeds: list[int]):
        self.seeds, self.done, self.said = list(seeds), {}, []

    def key(self, model, profile, defaults, task, options) -> str:
        compiled = model.get_compile_config() if getattr(model, "compiled", False) else None
        return json.dumps([model.get_config(), compiled, profile.model_dump(mode="json"),
                           defaults.model_dump(mode="json"), [list(task.classes), task.images_per_class],
                           options.model_dump(mode="json") if options is not None else None],
                          sort_keys=True, default=str)


@contextlib.contextmanager
def together(seeds: list[int]):
    """Inside it, ``train_and_evaluate`` for a seed of ``seeds`` trains them all at once where it can (see the
    module) and keeps each seed's result for that seed's own call; ``.said`` lists why a call could not."""
    here = _Together(seeds)
    _ACTIVE.append(here)
    try:
        yield here
    finally:
        _ACTIVE.remove(here)


def trained_in_company(model, profile, defaults, seed: int, task, options, prepare, warmup):
    """The Training a :func:`together` block has (or now makes) for this ``train_and_evaluate`` call; None when
    no block covers ``seed`` or the call cannot train in company (the caller trains it alone)."""
    here = next((t for t in reversed(_ACTIVE) if seed in t.seeds), None)
    if here is None:
        return None
    why = unbatchable(options, prepare, warmup)
    if why:
        here.said.append(why)
        return None
    key = here.key(model, profile, defaults, task, options)
    if (key, seed) not in here.done:
        for s, result in train_many(model, profile, defaults, here.seeds, task=task).items():
            here.done[(key, s)] = result
    return here.done.pop((key, seed))
