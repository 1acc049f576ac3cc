"""Architecture and parameter checks on a loaded Keras 3 model.

Equivalent formulations compare equal: Sequential or functional, nested
models, ``Dense(256, activation="relu")`` or ``Dense(256)`` followed by
``Activation("relu")`` (or a ``ReLU`` layer), ``Input`` layer or ``input_shape``.
Every mismatch is worded "Layer 3 (Dense 'dense_1'): expected units=256.
Received: units=128."
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ...errors import CheckFailed


@dataclass(frozen=True)
class Layer:
    """One expected layer: its Keras class name and the attributes that must match."""

    kind: str
    attrs: dict[str, Any] = field(default_factory=dict)

    def __init__(self, kind: str, **attrs: Any):
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "attrs", {k: _normalize(k, v) for k, v in attrs.items()})

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.attrs.items())
        return f"{self.kind}({args})"

    def build(self):
        """A fresh Keras layer with these attributes (to count the parameters it should have)."""
        import keras

        return getattr(keras.layers, self.kind)(**self.attrs)


@dataclass(frozen=True)
class Observed:
    """A layer of the student's model, after folding standalone activations into the layer before."""

    position: int
    kind: str
    name: str
    config: dict[str, Any]
    params: int
    output_shape: tuple | None = None

    def label(self) -> str:
        return f"Layer {self.position} ({self.kind} {self.name!r})"


_TUPLE_ATTRS = {"kernel_size", "strides", "pool_size", "dilation_rate"}
_ACTIVATION_LAYERS = {"ReLU": "relu", "Softmax": "softmax"}


def _normalize(key: str, value: Any) -> Any:
    if key in _TUPLE_ATTRS and isinstance(value, int):
        return (value, value)
    if isinstance(value, list):
        return tuple(value)
    return value


def _activation_name(config: dict[str, Any]) -> Any:
    act = config.get("activation")
    if isinstance(act, dict):  # a serialized activation object
        return act.get("config", {}).get("name", act.get("class_name"))
    return act


def observe(model) -> list[Observed]:
    """The student's layers in order, nested models expanded, InputLayers dropped, activations folded."""
    import keras

    def walk(m) -> list:
        out = []
        for layer in m.layers:
            if isinstance(layer, keras.Model):
                out.extend(walk(layer))
            elif not isinstance(layer, keras.layers.InputLayer):
                out.append(layer)
        return out

    observed: list[Observed] = []
    shape = tuple(model.inputs[0].shape) if getattr(model, "inputs", None) else None
    for layer in walk(model):
        try:
            shape = tuple(layer.compute_output_shape(shape)) if shape is not None else None
        except Exception:  # noqa: BLE001 - a layer that cannot tell its shape just has none
            shape = None
        kind = type(layer).__name__
        config = {k: _normalize(k, v) for k, v in layer.get_config().items()}
        act = config.get("activation") if kind == "Activation" else _ACTIVATION_LAYERS.get(kind)
        if kind == "ReLU" and (config.get("max_value") is not None or config.get("negative_slope", 0) or config.get("threshold", 0)):
            act = None  # a leaky or capped ReLU is not plain relu
        if act is not None and observed and _activation_name(observed[-1].config) == "linear":
            prev = observed[-1]
            observed[-1] = Observed(prev.position, prev.kind, prev.name, {**prev.config, "activation": act}, prev.params,
                                    prev.output_shape)
            continue
        observed.append(Observed(len(observed) + 1, kind, layer.name, config, layer.count_params(), shape))
    return observed


def _matches(expected: Any, received: Any) -> bool:
    if isinstance(expected, float) or isinstance(received, float):
        try:
            return math.isclose(float(expected), float(received), rel_tol=1e-6, abs_tol=1e-9)
        except (TypeError, ValueError):
            return False
    return expected == received


def _difference(want: Layer, got: Observed) -> tuple[str, Any, Any] | None:
    """The first attribute of ``want`` that ``got`` does not match: (key, expected, received), or None."""
    for key, value in want.attrs.items():
        have = _activation_name(got.config) if key == "activation" else got.config.get(key)
        if not _matches(value, have):
            return key, value, have
    return None


class Verdict(str):
    """A passing check's message, with the feedback that goes with it (``layers``: the architecture table)."""

    layers: list

    def __new__(cls, message: str, layers=()):
        made = super().__new__(cls, message)
        made.layers = list(layers)
        return made


def _attrs(config: dict[str, Any], keys) -> str:
    shown = []
    for key in keys:
        value = _activation_name(config) if key == "activation" else config.get(key)
        if value is not None:
            shown.append(f"{key}={value!r}")
    return ", ".join(shown)


_SHOWN = ("units", "filters", "kernel_size", "strides", "padding", "pool_size", "rate", "activation")


def _received(got: Observed, want: Layer | None) -> str:
    keys = list(want.attrs) if want is not None and want.kind == got.kind else [k for k in _SHOWN if k in got.config]
    return f"{got.kind} {got.name!r}" + (f" ({_attrs(got.config, keys)})" if keys else "")


def _first_difference(observed: list[Observed], expected: Sequence[Layer]) -> tuple[int, str] | None:
    """Where the student's layers first differ from ``expected``: (0-based position, the message), or None."""
    for i, want in enumerate(expected):
        if i >= len(observed):
            last = f"layer {len(observed)} ({observed[-1].kind})" if observed else "no layer at all"
            return i, (f"Layer {i + 1}: expected {want}. Received: nothing, the model ends after {last}. "
                       f"Add the missing layers: {', '.join(str(x) for x in expected[i:])}.")
        got = observed[i]
        if got.kind != want.kind:
            return i, f"{got.label()}: expected {want}. Received: {got.kind}."
        differs = _difference(want, got)
        if differs:
            key, value, have = differs
            return i, f"{got.label()}: expected {key}={value!r}. Received: {key}={have!r}."
    if len(observed) > len(expected):
        extra = observed[len(expected)]
        return len(expected), (
            f"{extra.label()}: expected no more layers after layer {len(expected)} ({expected[-1]}). "
            f"Received: {len(observed) - len(expected)} extra layer(s), starting with this {extra.kind}.")
    return None


def layer_table(model, expected: Sequence[Layer], input_shape: tuple[int, ...] | None = None,
                observed: list[Observed] | None = None) -> list:
    """The architecture, layer by layer: the expected layer beside the student's (named as the model's own
    ``summary()`` names it), with parameter counts, and the first difference marked."""
    from ...protocol import LayerRow

    observed = observe(model) if observed is None else observed
    if input_shape is None and getattr(model, "inputs", None):
        input_shape = tuple(model.inputs[0].shape[1:])
    try:
        want_params = expected_params(expected, input_shape) if input_shape else [None] * len(expected)
    except Exception:  # noqa: BLE001 - an input the expected layers cannot take: no expected counts
        want_params = [None] * len(expected)
    first = _first_difference(observed, expected)
    rows = []
    count = max(len(expected), len(observed))
    for i in range(min(count, MAX_ROWS)):
        want = expected[i] if i < len(expected) else None
        got = observed[i] if i < len(observed) else None
        rows.append(LayerRow(
            position=i + 1,
            expected=str(want)[:400] if want is not None else None,
            received=_received(got, want)[:400] if got is not None else None,
            expected_params=want_params[i] if want is not None else None,
            received_params=got.params if got is not None else None,
            differs=first is not None and first[0] == i,
        ))
    if count > MAX_ROWS:  # a report carries a bounded table: the rest is counted, not listed
        rows.append(LayerRow(position=MAX_ROWS + 1, expected=None, received=f"... and {count - MAX_ROWS} more layers"))
    return rows


MAX_ROWS = 200  # rows of a layer table (protocol.report.MAX_LAYERS is the report's bound)


def check_architecture(model, expected: Sequence[Layer], input_shape: tuple[int, ...] | None = None) -> str:
    """Raise :class:`CheckFailed` naming the first layer that differs; return a success message."""
    observed = observe(model)
    rows = layer_table(model, expected, input_shape, observed)
    first = _first_difference(observed, expected)
    if first is not None:
        raise CheckFailed(first[1], layers=rows)
    return Verdict(f"{len(expected)} layers as expected: " + " -> ".join(x.kind for x in expected) + ".", rows)


def expected_params(expected: Sequence[Layer], input_shape: tuple[int, ...]) -> list[int]:
    """Parameter count of each expected layer, by building the layers in a fresh Keras model."""
    import keras

    layers = [want.build() for want in expected]
    keras.Sequential([keras.Input(input_shape), *layers])
    return [layer.count_params() for layer in layers]


def check_parameters(model, expected: Sequence[Layer], input_shape: tuple[int, ...]) -> str:
    """Exact total. On a mismatch, the layer named is the one the architecture check names (the first that
    differs from the expected architecture); with the layers as expected, the first whose count diverges."""
    want_each = expected_params(expected, input_shape)
    want_total = sum(want_each)
    observed = observe(model)
    rows = layer_table(model, expected, input_shape, observed)
    got_total = model.count_params()
    if got_total == want_total:
        return Verdict(f"{got_total:,} parameters, as expected.", rows)
    total = f"Total: expected {want_total:,}, received {got_total:,}."
    first = _first_difference(observed, expected)
    count = max(len(expected), len(observed))

    def differs(i: int) -> bool:
        return (want_each[i] if i < len(expected) else None) != (observed[i].params if i < len(observed) else None)

    # the layer the architecture check names, when its count is off too; else the first whose count is
    order = ([first[0]] if first is not None else []) + list(range(count))
    i = next((i for i in order if differs(i)), None)
    if i is None:
        raise CheckFailed(f"Expected {want_total:,} parameters in total. Received: {got_total:,}.", layers=rows)
    if i >= len(observed):
        raise CheckFailed(f"Layer {i + 1}: expected {expected[i]} ({want_each[i]:,} parameters). Received: "
                          f"nothing, the model ends after layer {len(observed)}. {total}", layers=rows)
    got = observed[i]
    if i >= len(expected):
        raise CheckFailed(f"{got.label()}: expected no layer here. Received: a {got.kind} with {got.params:,} "
                          f"parameters. {total}", layers=rows)
    raise CheckFailed(f"{got.label()}: expected {want_each[i]:,} parameters (as {expected[i]} has). Received: "
                      f"{got.params:,}. {total}", layers=rows)


def expected_shapes(expected: Sequence[Layer], input_shape: tuple[int, ...]) -> list[tuple]:
    """Output shape of each expected layer on a batch of ``input_shape`` inputs."""
    shape: tuple = (None, *input_shape)
    shapes = []
    for want in expected:
        shape = tuple(want.build().compute_output_shape(shape))
        shapes.append(shape)
    return shapes


def check_output_shapes(model, expected: Sequence[Layer], input_shape: tuple[int, ...]) -> str:
    """Each layer's output shape, in order (layer types are the architecture check's business)."""
    want = expected_shapes(expected, input_shape)
    observed = observe(model)
    for i, shape in enumerate(want):
        if i >= len(observed):
            raise CheckFailed(f"Layer {i + 1}: expected output shape {shape}. Received: nothing, the model has "
                              f"{len(observed)} layers.")
        got = observed[i]
        if got.output_shape != shape:
            raise CheckFailed(f"{got.label()}: expected output shape {shape}. Received: {got.output_shape}. "
                              "Check this layer's filters, kernel size, strides and padding.")
    if len(observed) > len(want):
        extra = observed[len(want)]
        raise CheckFailed(f"{extra.label()}: expected no more layers after layer {len(want)} "
                          f"(output shape {want[-1]}). Received: {len(observed) - len(want)} extra layer(s).")
    return "output shapes as expected: " + " -> ".join("x".join(str(d) for d in s[1:]) for s in want) + "."


REGULARIZATION_LAYERS = frozenset({
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "GaussianDropout", "GaussianNoise", "AlphaDropout",
    "BatchNormalization", "LayerNormalization", "GroupNormalization", "ActivityRegularization",
    "RandomFlip", "RandomTranslation", "RandomRotation", "RandomZoom", "RandomContrast", "RandomBrightness",
    "RandomErasing", "RandomGaussianBlur",
})
SHAPING_LAYERS = frozenset({"Flatten", "Reshape", "Activation", "ReLU", "Softmax", "Rescaling"})


def check_keeps_layers(model, kept: Sequence[Layer], allowed: frozenset[str] = REGULARIZATION_LAYERS | SHAPING_LAYERS) -> str:
    """The model keeps ``kept`` (its layers of those kinds, in order, with those attributes); every other layer
    is one of ``allowed`` (regularization, normalization, augmentation, reshaping)."""
    kinds = {want.kind for want in kept}
    observed = observe(model)
    core = [o for o in observed if o.kind in kinds]
    for i, want in enumerate(kept):
        if i >= len(core):
            raise CheckFailed(f"Expected the baseline's layers {', '.join(map(str, kept))}. Received: only {len(core)} "
                              f"of them; {want} is missing. Regularize the baseline's layers rather than removing them.")
        got = core[i]
        differs = _difference(want, got)
        if differs:
            key, value, have = differs
            raise CheckFailed(f"{got.label()}: expected {key}={value!r}, as in the baseline. Received: {key}={have!r}. "
                              "Keep the baseline's layer sizes; regularize them instead.")
    if len(core) > len(kept):
        extra = core[len(kept)]
        raise CheckFailed(f"{extra.label()}: expected only the baseline's {len(kept)} {'/'.join(sorted(kinds))} layers. "
                          f"Received: {len(core)}. Regularize the baseline rather than changing its layers.")
    other = next((o for o in observed if o.kind not in kinds and o.kind not in allowed), None)
    if other is not None:
        raise CheckFailed(f"{other.label()}: expected only regularization layers added to the baseline "
                          f"({', '.join(sorted(REGULARIZATION_LAYERS))}). Received: {other.kind}.")
    added = sorted({o.kind for o in observed if o.kind in REGULARIZATION_LAYERS})
    regularized = [o.label() for o in core if any(o.config.get(k) for k in
                   ("kernel_regularizer", "bias_regularizer", "activity_regularizer"))]
    said = ", ".join(added + ([f"weight penalties on {len(regularized)} layer(s)"] if regularized else [])) or "nothing"
    return f"the baseline's layers are kept ({', '.join(map(str, kept))}); added: {said}."


RECURRENT = ("LSTM", "GRU", "SimpleRNN", "Bidirectional")


def check_recurrent(model, kind: str, units: int) -> str:
    """The model's first recurrent layer has the expected type and number of units."""
    observed = observe(model)
    found = next((o for o in observed if o.kind in RECURRENT), None)
    if found is None:
        kinds = ", ".join(o.kind for o in observed) or "no layers"
        raise CheckFailed(f"Expected a recurrent layer: {kind}(units={units}) reading the 28 rows of the image as "
                          f"28 time steps. Received: {kinds}. Add layers.Reshape((28, 28)) then layers.{kind}({units}).")
    if found.kind != kind:
        raise CheckFailed(f"{found.label()}: expected {kind}(units={units}). Received: {found.kind}.")
    if found.config.get("units") != units:
        raise CheckFailed(f"{found.label()}: expected units={units}. Received: units={found.config.get('units')}.")
    return f"{kind} with {units} units, as expected ({found.label().lower()})."
