"""Which labels the grader trains with: they follow the loss the model is compiled with, and the metrics follow them.

The grader's labels are class indices (0, 1, 2, ...). A loss that compares the model's scores with a target of
the same shape (categorical cross-entropy, KL divergence, mean squared error, ...) gets them one-hot encoded; a
sparse loss gets the indices; a loss that cannot train a classifier at all (CTC, Circle, ...) is the student's
error, said before any training. The decision is made on the loss as Keras resolves it (``keras.losses.get`` of
``model.loss``), from :func:`loss_table`, which names every loss ``keras.losses`` exposes; a loss it does not name
is tried on a small batch of each kind of label.

The metrics follow the labels: a metric made for the other kind (``sparse_categorical_accuracy`` beside a
categorical loss, ``categorical_accuracy`` beside a sparse one) is swapped for its twin, and the first accuracy
metric, however it is spelled (``"acc"``, ``"accuracy"``, ``SparseCategoricalAccuracy(name="my_acc")``, ...), is
the grader's ``"accuracy"``, so every history has ``accuracy`` and ``val_accuracy`` when the model reports one.
Metrics never change what is learned; the grader measures the accuracy of a grade itself.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import StudentCodeError

SPARSE = "sparse"    # class indices, shape (batch,)
ONE_HOT = "one_hot"  # one-hot rows, shape (batch, classes)

ACCURACY = "accuracy"  # the history key of the grader's accuracy metric (and "val_accuracy")
ACCURACY_KEYS = ("accuracy", "acc", "sparse_categorical_accuracy", "categorical_accuracy")  # what Keras may call it
AUTO_ACCURACY = ("accuracy", "acc")  # strings Keras resolves to the accuracy that fits the labels (any case)
AUTO_CROSSENTROPY = ("crossentropy", "ce")  # strings Keras resolves to the cross-entropy that fits the labels

EXPECTED = ("Expected a classification loss, one that takes class indices (e.g. 'sparse_categorical_crossentropy') "
            "or one-hot labels (e.g. 'categorical_crossentropy')")
FIX = "Compile with loss='sparse_categorical_crossentropy', or leave the model uncompiled to use the course defaults."


@functools.cache
def loss_table() -> dict[Any, tuple[str, str]]:
    """Every loss function of ``keras.losses`` (the ``fn`` of its Loss class too) -> (form, why).

    form: :data:`SPARSE`, :data:`ONE_HOT`, or "" for a loss that cannot train a classifier (why says why).
    """
    from keras import losses as L

    sparse = [L.sparse_categorical_crossentropy,
              L.categorical_generalized_cross_entropy]  # its class one-hot encodes the indices itself
    one_hot = [L.categorical_crossentropy, L.categorical_focal_crossentropy, L.categorical_hinge, L.kl_divergence,
               # element-wise: the 10-wide target against the 10 scores (one-vs-rest)
               L.binary_crossentropy, L.binary_focal_crossentropy, L.hinge, L.squared_hinge, L.mean_squared_error,
               L.mean_absolute_error, L.mean_absolute_percentage_error, L.mean_squared_logarithmic_error, L.huber,
               L.log_cosh, L.poisson, L.cosine_similarity, L.dice, L.tversky]
    table = {fn: (SPARSE, "") for fn in sparse} | {fn: (ONE_HOT, "") for fn in one_hot}
    table[L.ctc] = ("", "CTC scores label sequences against per-time-step outputs, not one class per image")
    table[L.circle] = ("", "Circle is a metric-learning loss: it pulls together the outputs of images of the same "
                           "class and trains no class scores")
    return table


def label_form(model) -> str:
    """:data:`SPARSE` or :data:`ONE_HOT`: the labels ``model``'s compiled loss takes (SPARSE when it has none).

    StudentCodeError when the loss cannot train a classifier, or when the losses of a list or dict do not agree.
    """
    forms = {}
    for loss in _leaves(getattr(model, "loss", None)):
        forms[_said(loss)] = _form(loss)
    kinds = set(forms.values())
    if len(kinds) > 1:
        said = ", ".join(f"{name} ({'one-hot labels' if form == ONE_HOT else 'class indices'})"
                         for name, form in forms.items())
        raise StudentCodeError(
            f"{EXPECTED}: every loss of the model must take the same labels, and the grader trains a model with "
            f"one output. Received: loss={said}. {FIX}")
    return kinds.pop() if kinds else SPARSE


def wants_one_hot(model) -> bool:
    """Whether ``model``'s compiled loss takes one-hot labels (see :func:`label_form`)."""
    return label_form(model) == ONE_HOT


def targets(labels: np.ndarray, form: str, classes: int) -> np.ndarray:
    """``labels`` (class indices) as the loss takes them."""
    return np.eye(classes, dtype="float32")[labels] if form == ONE_HOT else labels


def _leaves(loss) -> list:
    """The losses of a loss, a list of them or a dict of them by output name (None left out)."""
    if loss is None:
        return []
    if isinstance(loss, str) or _is_config(loss):
        return [loss]
    if isinstance(loss, Mapping):
        return [leaf for value in loss.values() for leaf in _leaves(value)]
    if isinstance(loss, (list, tuple)):
        return [leaf for value in loss for leaf in _leaves(value)]
    return [loss]


def _is_config(node) -> bool:
    return isinstance(node, Mapping) and "class_name" in node


def _form(loss) -> str:
    """The labels one loss (as compile got it) takes; StudentCodeError when it cannot train a classifier."""
    import keras

    if isinstance(loss, str) and loss.lower() in AUTO_CROSSENTROPY:
        return SPARSE  # Keras picks the cross-entropy by the labels: sparse for class indices
    try:
        resolved = keras.saving.deserialize_keras_object(loss) if _is_config(loss) else keras.losses.get(loss)
    except Exception:  # noqa: BLE001 - Keras does not know it: fit says so, in the grader's training message
        return SPARSE
    fn = getattr(resolved, "fn", resolved)  # a Loss class (LossFunctionWrapper) -> its function
    if type(resolved) is keras.losses.Loss:
        why = "keras.losses.Loss is the base class of the losses and computes nothing itself"
        raise StudentCodeError(f"{EXPECTED}. Received: loss={_said(loss)} ({why}). {FIX}")
    if fn is keras.losses.categorical_generalized_cross_entropy and not isinstance(resolved, keras.losses.Loss):
        why = ("the function needs its q argument, which compile() cannot pass: use "
               "keras.losses.CategoricalGeneralizedCrossEntropy(q=0.5)")
        raise StudentCodeError(f"{EXPECTED}. Received: loss={_said(loss)} ({why}). {FIX}")
    form, why = loss_table().get(fn, (None, ""))
    if form is None:
        form = probe(resolved)
        why = "it fails on both class indices and one-hot labels"
    if not form:
        raise StudentCodeError(f"{EXPECTED}. Received: loss={_said(loss)} ({why}). {FIX}")
    return form


def probe(loss) -> str:
    """The labels a loss the table does not name takes, found by calling it on a batch of 4 of each kind (10 class
    scores each, so that no shape broadcasts): SPARSE, ONE_HOT, or "" when neither gives a finite value."""
    from keras import ops

    indices = np.arange(4) % 3
    scores = ops.convert_to_tensor(np.full((4, 10), 0.1, "float32"))
    works = []
    for form in (SPARSE, ONE_HOT):
        try:
            value = loss(ops.convert_to_tensor(targets(indices, form, 10)), scores)
            if np.all(np.isfinite(ops.convert_to_numpy(value))):
                works.append(form)
        except Exception:  # noqa: BLE001 - this kind of label does not fit it
            pass
    return works[0] if works else ""


def _said(loss) -> str:
    """A loss as a student would have written it: 'ctc', keras.losses.ctc, keras.losses.CTC()."""
    if isinstance(loss, str):
        return repr(loss)
    if _is_config(loss):
        inner = loss.get("config")
        return repr(inner) if loss.get("class_name") == "function" else f"{loss.get('class_name')}({inner!r})"
    if callable(loss) and hasattr(loss, "__name__"):
        return f"keras.losses.{loss.__name__}"
    settings = ""
    try:
        default, given = type(loss)().get_config(), loss.get_config()
        settings = ", ".join(f"{k}={v!r}" for k, v in given.items() if k != "name" and default.get(k) != v)
    except Exception:  # noqa: BLE001 - a class that needs arguments: named without them
        pass
    return f"keras.losses.{type(loss).__name__}({settings})"


# --- metrics -------------------------------------------------------------------------------------------------

@functools.cache
def _metric_kinds() -> tuple[dict, dict]:
    """(metric class -> (kind, form), metric function -> (kind, form)); kind: accuracy, top_k or crossentropy
    (form "" for an accuracy: its twin is chosen by the labels)."""
    import keras

    M, L = keras.metrics, keras.losses
    classes = {M.Accuracy: ("accuracy", ""), M.CategoricalAccuracy: ("accuracy", ""),
               M.SparseCategoricalAccuracy: ("accuracy", ""),
               M.TopKCategoricalAccuracy: ("top_k", ONE_HOT), M.SparseTopKCategoricalAccuracy: ("top_k", SPARSE),
               M.CategoricalCrossentropy: ("crossentropy", ONE_HOT),
               M.SparseCategoricalCrossentropy: ("crossentropy", SPARSE)}
    functions = {M.categorical_accuracy: ("accuracy", ""), M.sparse_categorical_accuracy: ("accuracy", ""),
                 M.top_k_categorical_accuracy: ("top_k", ONE_HOT),
                 M.sparse_top_k_categorical_accuracy: ("top_k", SPARSE),
                 M.categorical_crossentropy: ("crossentropy", ONE_HOT),
                 M.sparse_categorical_crossentropy: ("crossentropy", SPARSE),
                 L.categorical_crossentropy: ("crossentropy", ONE_HOT),
                 L.sparse_categorical_crossentropy: ("crossentropy", SPARSE)}
    return classes, functions


def _metric(spec) -> tuple[str, str, Any, str]:
    """(kind, form, the resolved metric, its name) of one metric as compile got it; kind "" for the others."""
    import keras

    if isinstance(spec, str) and spec.lower() in AUTO_ACCURACY:
        return "accuracy", "", None, spec
    try:  # keras.metrics.get misreads a function's config ('categorical_crossentropy' as the class)
        metric = keras.saving.deserialize_keras_object(spec) if _is_config(spec) else keras.metrics.get(spec)
    except Exception:  # noqa: BLE001 - Keras does not know it: left as it is, fit says so
        return "", "", None, ""
    classes, functions = _metric_kinds()
    if isinstance(metric, keras.metrics.Metric):
        kind, form = next((found for cls, found in classes.items() if type(metric) is cls), ("", ""))
        return kind, form, metric, metric.name
    kind, form = functions.get(metric, ("", ""))
    return kind, form, metric, spec if isinstance(spec, str) else getattr(metric, "__name__", "")


def _twin(kind: str, form: str, metric, name: str) -> dict:
    """The metric of ``kind`` for labels of ``form``, named ``name``, serialized as compile configs hold it."""
    import keras

    M = keras.metrics
    if kind == "accuracy":
        twin = M.CategoricalAccuracy(name=name) if form == ONE_HOT else M.SparseCategoricalAccuracy(name=name)
    elif kind == "top_k":
        k = getattr(metric, "k", 5)
        twin = M.TopKCategoricalAccuracy(k=k, name=name) if form == ONE_HOT else M.SparseTopKCategoricalAccuracy(
            k=k, name=name)
    else:
        logits = bool(getattr(metric, "from_logits", False))
        twin = (M.CategoricalCrossentropy(name=name, from_logits=logits) if form == ONE_HOT
                else M.SparseCategoricalCrossentropy(name=name, from_logits=logits))
    return keras.metrics.serialize(twin)


_DROP = object()


def follow_labels(metrics, form: str, *, canonical: bool = True):
    """``metrics`` (a compile config's: names, serialized metrics, lists, dicts by output) for labels of ``form``.

    A metric made for the other kind of label becomes its twin (same name); with ``canonical`` the first accuracy
    metric becomes ``"accuracy"`` (Keras picks the kind from the labels) and any other accuracy metric is left
    out (the history would only repeat it).
    """
    found = []

    def leaf(spec):
        kind, made_for, metric, name = _metric(spec)
        if kind == "accuracy":
            if canonical:
                if found:
                    return _DROP
                found.append(spec)
                return ACCURACY
            if isinstance(spec, str) and spec.lower() in AUTO_ACCURACY:
                return spec
            return _twin(kind, form, metric, name)
        if kind and made_for != form:
            return _twin(kind, form, metric, name)
        return spec

    def walk(node):
        if node is None:
            return None
        if isinstance(node, str) or _is_config(node):
            return leaf(node)
        if isinstance(node, Mapping):
            return {key: walked for key, value in node.items() if (walked := walk(value)) is not _DROP}
        if isinstance(node, (list, tuple)):
            return [walked for value in node if (walked := walk(value)) is not _DROP]
        return node

    walked = walk(metrics)
    return [] if walked is _DROP else walked


def metric_names(model) -> list[str]:
    """The names of the metrics ``model`` is compiled with, as its history will report them (without ``val_``)."""
    config = model.get_compile_config() if getattr(model, "compiled", False) else {}
    names = []
    for key in ("metrics", "weighted_metrics"):
        for spec in _leaves(config.get(key)):
            if isinstance(spec, str):
                names.append(spec)
            elif _is_config(spec):
                inner = spec.get("config")
                names.append(inner if isinstance(inner, str) else str((inner or {}).get("name", "")))
    return [name for name in names if name]


def history_key(key: str) -> str:
    """A history key as the grader names it: any spelling of the accuracy is ``accuracy`` (``val_`` kept)."""
    prefix = "val_" if key.startswith("val_") else ""
    return prefix + ACCURACY if key.removeprefix(prefix) in ACCURACY_KEYS else key
