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

A base the grader restores into each copy and a warm-up of the head are done as train_and_evaluate does them,
copy by copy, each phase trained together. What this does not batch (early stopping or a validation split
from ``fit_options()``: each seed would stop at its own epoch; another backend) :func:`unbatchable` names;
those calls train one seed at a time, as always.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DeepgradeError, first_line

BATCHED = "fastfit-seeds"  # Training.method of a seed trained in company
PREDICT_ROWS = 4096       # rows per compiled prediction (as training.predicted_classes asks fastfit for)


# The grader's own preparations and warm-ups (checks/transfer.py), known by their code: the same for every seed of a
# block, so one stands for all. Any other callable makes a call train alone (two unknown ones may not be the same).
KNOWN = ("restore.<locals>.prepare", "head_first.<locals>.<lambda>")


def _code(f) -> str | None:
    return None if f is None else getattr(f, "__qualname__", type(f).__qualname__)


def unbatchable(options=None, prepare=None, warmup=None) -> str:
    """Why a ``train_and_evaluate`` call with these arguments cannot train in company; "" when it can: only where
    the call alone would train through fastfit (its shuffle and steps are what the batch reproduces)."""
    import keras

    from .training import fast_path

    if keras.backend.backend() != "jax":
        return f"seeds train together on the JAX backend; this process runs Keras on {keras.backend.backend()}"
    if not fast_path():
        return "fastfit is off ($DEEPGRADE_FASTFIT=0): each seed trains with model.fit"
    if keras.config.is_nnx_enabled() or keras.distribution.distribution() is not None:
        return "Flax NNX or a Keras distribution is on: each seed trains with model.fit"
    if options is not None and (options.early_stopping or options.validation_split):
        return "fit_options() asks for early stopping or a validation split (each seed would stop on its own)"
    for what, f in (("preparation", prepare), ("warm-up", warmup.frozen if warmup is not None else None)):
        if f is not None and _code(f) not in KNOWN:
            return f"a {what} the grader does not know ({_code(f)}): it may differ from seed to seed"
    return ""


@dataclass
class _Copy:
    seed: int
    model: Any
    compiled_by: str
    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_mon: np.ndarray
    y_mon: np.ndarray
    monitored_on: str


def _copies(model, profile, defaults, seeds, task, prepare) -> list[_Copy]:
    """Each seed's fresh copy and data, made exactly as train_and_evaluate makes them (one seed after another)."""
    from .training import _fresh_copy, seed_everything, training_data

    copies = []
    for seed in seeds:
        seed_everything(seed)
        x, y, x_test, y_test, x_mon, y_mon, monitored_on = training_data(profile, seed, task, monitor=True)
        fresh, compiled_by = _fresh_copy(model, defaults, prepare)
        copies.append(_Copy(seed, fresh, compiled_by, x, y, x_test, y_test, x_mon, y_mon, monitored_on))
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


def _phase(copies: list[_Copy], task, batch: int, epochs: int, offset: int, loop: str) -> list[dict]:
    """One ``fit`` of every copy as it is compiled now, together: fastfit's epochs (shuffle seeded by ``(seed +
    offset, epoch)``, validation on the monitor set), the state written back into each copy at the end. Each
    copy's history (canonical names)."""
    import jax

    from . import fastfit
    from .labels import label_form
    from .labels import targets as label_targets
    from .training import _canonical

    def targets(c, labels):  # as the loss each copy is compiled with now takes them
        return fastfit._host(label_targets(labels, label_form(c.model), task.num_classes))

    xs, ts = [fastfit._host(c.x) for c in copies], [targets(c, c.y) for c in copies]
    head = copies[0].model
    head._symbolic_build(data_batch=(xs[0][:batch], ts[0][:batch]))  # as fastfit builds it, per fit
    for c in copies[1:]:  # the others' optimizers (their slots may start from the weights: EMA); their loss and
        c.model.optimizer.build(c.model.trainable_variables)  # metrics are never called: the head's step runs
    n = len(xs[0])
    x, x_axis = _shared(xs)
    t, t_axis = _shared(ts)
    x_mon, m_axis = _shared([fastfit._host(c.x_mon) for c in copies])
    t_mon, tm_axis = _shared([targets(c, c.y_mon) for c in copies])
    data, monitor = jax.device_put((x, t)), jax.device_put((x_mon, t_mon))
    head.reset_metrics()
    metrics = [v.value for v in head.metrics_variables]  # constants at the start of an epoch: the same for all
    fresh_metrics = _stack([metrics] * len(copies))
    values = lambda variables: [v.value for v in variables]  # noqa: E731
    state = _stack([(values(c.model.trainable_variables), values(c.model.non_trainable_variables),
                     values(c.model.optimizer.variables), metrics) for c in copies])
    scan, step, last = fastfit._train_functions(head, n, batch)
    full, rest = divmod(n, batch)
    histories: list[dict[str, list[float]]] = [{} for _ in copies]
    with fastfit.tiled_max_pool(jax.default_backend() == "cpu"):
        if loop == "scan":
            epoch_fn = jax.jit(jax.vmap(scan, in_axes=(0, (x_axis, t_axis), 0)))
        else:
            step_fn = jax.jit(jax.vmap(step, in_axes=(0, (x_axis, t_axis), 0, None))) if full else None
            last_fn = jax.jit(jax.vmap(last, in_axes=(0, (x_axis, t_axis), 0))) if rest else None
        evaluate = jax.jit(jax.vmap(fastfit._evaluate_function(head, len(copies[0].x_mon), batch),
                                    in_axes=(0, (m_axis, tm_axis))))
        for epoch in range(epochs):
            state = (state[0], state[1], state[2], fresh_metrics)
            order = jax.device_put(np.stack([
                np.random.default_rng([(c.seed + offset) % 2**63, epoch]).permutation(n) for c in copies
            ]).astype(np.int32))
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
    for i, c in enumerate(copies):
        mine = _pick(state, i)
        groups = [c.model.trainable_variables, c.model.non_trainable_variables, c.model.optimizer.variables]
        for variables, got in zip(groups, mine[:3], strict=True):
            for variable, value in zip(variables, got, strict=True):
                variable.assign(value)
        if epochs > 0:
            c.model.optimizer.finalize_variable_values(c.model.trainable_weights)
    return [_canonical(history) for history in histories]


def train_many(model, profile, defaults, seeds: list[int], *, task=None, prepare=None, warmup=None,
               loop: str = "auto") -> dict[int, Any]:
    """``{seed: Training}`` for ``seeds``, trained together (see the module): train_and_evaluate's ``prepare``
    (the pretrained base restored into each copy) and ``warmup`` (the head first, the base frozen) included;
    ``loop`` as in fastfit.fit."""
    import jax

    from . import fastfit
    from .training import Task, Training, _compile_defaults, _compile_like, _extend, _with_sublayers, confusion_matrix

    task = task or Task()
    start = time.monotonic()
    copies = _copies(model, profile, defaults, list(seeds), task, prepare)
    batch, epochs = int(profile.batch_size), int(profile.epochs)
    n = len(copies[0].x)
    if any(len(c.x) != n for c in copies):
        raise ValueError("the seeds' training sets differ in size: they cannot train together")
    loop = loop if loop != "auto" else "step" if jax.default_backend() == "cpu" else "scan"
    curves: list[dict] = [{} for _ in copies]
    warm = min(warmup.epochs, epochs - 1) if warmup is not None else 0
    if warm > 0:  # as train_and_evaluate: the base frozen, the course's compile, then the student's flags and compile
        flags = []
        for c in copies:
            frozen = warmup.frozen(c.model)
            flags.append([(layer, layer.trainable) for layer in _with_sublayers(frozen)])
            frozen.trainable = False
            _compile_defaults(c.model, defaults)
        for curve, history in zip(curves, _phase(copies, task, batch, warm, 0, loop), strict=True):
            _extend(curve, history)
        for c, kept in zip(copies, flags, strict=True):
            for layer, flag in kept:
                layer.trainable = flag
            _compile_like(c.model, model, defaults)
    last = _phase(copies, task, batch, epochs - warm, 3, loop)
    for curve, history in zip(curves, last, strict=True):
        _extend(curve, history)
    seconds = time.monotonic() - start

    start = time.monotonic()
    head = copies[0].model
    weights = _stack([fastfit._state(c.model, training=False)[:2] for c in copies])  # trainable, non-trainable
    with fastfit.tiled_max_pool(jax.default_backend() == "cpu"):
        classes = jax.jit(jax.vmap(fastfit.class_function(head), in_axes=(0, None)))
        classes_own = jax.jit(jax.vmap(fastfit.class_function(head), in_axes=(0, 0)))
        x_test, test_axis = _shared([c.x_test for c in copies])
        x_train, train_axis = _shared([c.x for c in copies])
        predicted_test = _predict(classes if test_axis is None else classes_own, weights, x_test, test_axis)
        predicted_train = _predict(classes if train_axis is None else classes_own, weights, x_train, train_axis)
    evaluate_seconds = time.monotonic() - start

    results = {}
    for i, c in enumerate(copies):
        losses = last[i].get("loss", [float("nan")])
        results[c.seed] = Training(
            test_accuracy=float(np.mean(predicted_test[i] == c.y_test)),
            train_accuracy=float(np.mean(predicted_train[i] == c.y)),
            train_size=n, epochs=epochs, seconds=seconds / len(copies),
            evaluate_seconds=evaluate_seconds / len(copies), compiled_by=c.compiled_by,
            final_loss=float(losses[-1]), epochs_run=warm + len(losses), warmup_epochs=warm, model=c.model,
            history=curves[i], confusion=confusion_matrix(c.y_test, predicted_test[i], task.num_classes),
            monitored_on=c.monitored_on, method=BATCHED)
    return results


def _rows_per_call(seeds: int) -> int:
    """Rows per seed in one prediction call: fastfit's :data:`PREDICT_ROWS` up to 8 seeds, then fewer, so that a
    call holds at most 8 x 4096 images' activations (100 seeds of the course CNN: 4 GB, not 70)."""
    return PREDICT_ROWS if seeds <= 8 else max(256, PREDICT_ROWS * 8 // seeds // 256 * 256)


def _predict(fn, weights, x: np.ndarray, axis) -> np.ndarray:
    """Every seed's classes of ``x`` (shared, or one per seed on ``axis`` 0), :func:`_rows_per_call` rows per
    call, the last call padded, as fastfit.predict_classes does it for one model."""
    import jax

    rows = x.shape[0] if axis is None else x.shape[1]
    step = _rows_per_call(len(jax.tree.leaves(weights)[0]))
    parts = []
    for start in range(0, rows, step):
        part = x[start:start + step] if axis is None else x[:, start:start + step]
        short = step - (part.shape[0] if axis is None else part.shape[1])
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
        self.seeds, self.done, self.said, self.failed = list(seeds), {}, [], set()

    def key(self, model, profile, defaults, task, options, prepare, warmup) -> str:
        """What makes two calls the same training: the model's config and compile settings, the budget, the task,
        the options, and which preparation and warm-up (by their code: the grader's restore of the course's base,
        its head-first warm-up; the same for every seed of a block)."""
        compiled = model.get_compile_config() if getattr(model, "compiled", False) else None
        return json.dumps([model.get_config(), compiled, profile.model_dump(mode="json"),
                           defaults.model_dump(mode="json"), [list(task.classes), task.images_per_class],
                           options.model_dump(mode="json") if options is not None else None, _code(prepare),
                           None if warmup is None else [warmup.epochs, _code(warmup.frozen)]],
                          sort_keys=True, default=repr)


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
    key = here.key(model, profile, defaults, task, options, prepare, warmup)
    if key in here.failed:
        return None
    if (key, seed) not in here.done:
        try:
            trained = train_many(model, profile, defaults, here.seeds, task=task, prepare=prepare, warmup=warmup)
        except DeepgradeError:
            raise
        except Exception as exc:  # noqa: BLE001 - each seed then trains alone, where its own error is said as always
            here.failed.add(key)
            here.said.append(f"training them together failed ({type(exc).__name__}: {first_line(exc)})")
            return None
        for s, result in trained.items():
            here.done[(key, s)] = result
    return here.done.pop((key, seed))
