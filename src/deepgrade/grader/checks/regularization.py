"""What a model does against over-fitting, read from what it is (its layers, its compile settings, its
training options), never from a training: the regularization exercise's gap earns points only for a model that
adds some, because the un-regularized baseline's gap reaches the threshold on a lucky seed (docs/calibration.md).

The reading is generous by design: any layer that is neither the baseline's (Dense) nor a reshaping one counts
(dropout, noise, normalization, augmentation, and kinds this module has never heard of), and so does any weight
penalty or constraint, early stopping, an optimizer's weight decay or weight averaging, and label smoothing.
Only settings that do nothing are not counted: Dropout(0.0), GaussianNoise(0.0), an L2(0.0) penalty.
"""

from __future__ import annotations

from typing import Any

from .architecture import SHAPING_LAYERS, observe

# layer settings that regularize when set (per layer: a weight penalty, a constraint, an RNN's dropout)
PENALTIES = ("kernel_regularizer", "bias_regularizer", "activity_regularizer", "depthwise_regularizer",
             "pointwise_regularizer", "recurrent_regularizer", "beta_regularizer", "gamma_regularizer")
CONSTRAINTS = ("kernel_constraint", "bias_constraint", "depthwise_constraint", "pointwise_constraint",
               "recurrent_constraint", "beta_constraint", "gamma_constraint")
RATES = ("dropout", "recurrent_dropout")
# a layer's strength settings: when every one it has is zero, the layer does nothing (Dropout(0.0))
STRENGTHS = ("rate", "stddev", "l1", "l2", "factor", "height_factor", "width_factor", "value_range_factor")
PLAIN = SHAPING_LAYERS | {"Dense", "Identity"}  # the baseline's own kinds, and a layer that does nothing


def _positive(value: Any) -> bool:
    """Whether a setting has any strength: a positive number, or one nested in a tuple/list or a serialized
    object (``{"class_name": "L2", "config": {"l2": 0.001}}``)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value > 0
    if isinstance(value, list | tuple):
        return any(_positive(abs(v) if isinstance(v, int | float) else v) for v in value)  # RandomRotation((-0.1, 0))
    if isinstance(value, dict):
        inner = value.get("config", value)
        if not isinstance(inner, dict):
            return True
        numbers = {k: v for k, v in inner.items() if isinstance(v, int | float | list | tuple) and k != "seed"}
        return any(_positive(v) for v in numbers.values()) if numbers else True
    return value is not None


def _class(value: Any) -> str:
    return str(value.get("class_name", "?")) if isinstance(value, dict) else str(value)


def _settings(value: Any) -> dict:
    inner = value.get("config") if isinstance(value, dict) else None
    return inner if isinstance(inner, dict) else {}


# what makes a layer or a constraint of these kinds a no-op, beyond zero strengths
def _layer_does_nothing(kind: str, config: dict) -> bool:
    if kind == "BatchNormalization" and config.get("trainable") is False:
        return True  # frozen, with its initial statistics: x / sqrt(1 + epsilon)
    if kind == "RandomGaussianBlur" and not any(k > 1 for k in _numbers(config.get("kernel_size", 3))):
        return True
    if kind == "RandomErasing" and not _positive(config.get("scale", 1)):
        return True
    strengths = [config[k] for k in STRENGTHS if k in config]
    return bool(strengths) and not any(_positive(abs(v) if isinstance(v, int | float) else v) for v in strengths)


def _numbers(value: Any) -> list[float]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [value]
    return [v for v in value if isinstance(v, int | float)] if isinstance(value, list | tuple) else []


def _constraint_does_nothing(value: Any) -> bool:
    settings = _settings(value)
    if _class(value) == "Constraint":  # the base class: returns the weights as they are
        return True
    return _class(value) == "MinMaxNorm" and settings.get("rate", 1.0) == 0


def _losses(loss: Any) -> list:
    if isinstance(loss, list | tuple):
        return [item for part in loss for item in _losses(part)]
    if isinstance(loss, dict) and "class_name" not in loss:  # one loss per output
        return [item for part in loss.values() for item in _losses(part)]
    return [loss]


def regularization_of(model, options=None, epochs: int | None = None) -> list[str]:
    """What regularizes ``model``, one phrase each (``[]``: nothing, the baseline as given); ``options`` the
    notebook's training options (:class:`deepgrade.protocol.FitOptions`), for early stopping, which counts when
    it can stop before ``epochs``. Never raises: a configuration it cannot read counts as regularized (a
    correct student must never be told there is none)."""
    try:
        return _regularization_of(model, options, epochs)
    except Exception as exc:  # noqa: BLE001 - generous by design: an unreadable model is not "the baseline as given"
        return [f"settings the grader could not read ({type(exc).__name__})"]


def _regularization_of(model, options, epochs: int | None) -> list[str]:
    found: list[str] = []
    for layer in observe(model):
        config = layer.config
        where = f"layer {layer.position}"
        if layer.kind not in PLAIN and not _layer_does_nothing(layer.kind, config):
            said = ", ".join(f"{k}={config[k]}" for k in STRENGTHS if k in config)
            found.append(f"{layer.kind}({said}) ({where})")
        for key in PENALTIES:
            if config.get(key) is not None and _positive(config[key]):
                found.append(f"{key}={_class(config[key])} on {where} ({layer.kind})")
        for key in CONSTRAINTS:
            if config.get(key) is not None and not _constraint_does_nothing(config[key]):
                found.append(f"{key}={_class(config[key])} on {where} ({layer.kind})")
        for key in RATES:
            if _positive(config.get(key, 0)):
                found.append(f"{key}={config[key]} on {where} ({layer.kind})")
    early = getattr(options, "early_stopping", None)
    if early is not None and (epochs is None or early.patience < epochs):
        found.append(f"early stopping on {early.monitor} (patience {early.patience}) in fit_options()")
    compiled = model.get_compile_config() if getattr(model, "compiled", False) else None
    if compiled:
        optimizer = compiled.get("optimizer")
        while _settings(optimizer).get("inner_optimizer") is not None:  # LossScaleOptimizer(AdamW(...))
            optimizer = _settings(optimizer)["inner_optimizer"]
        settings = _settings(optimizer)
        if _positive(settings.get("weight_decay") or 0):
            found.append(f"{_class(optimizer)}(weight_decay={settings['weight_decay']})")
        if settings.get("use_ema") and _positive(settings.get("ema_momentum", 0.99)):
            found.append(f"{_class(optimizer)}(use_ema=True)")
        for loss in _losses(compiled.get("loss")):
            smoothing = _settings(loss).get("label_smoothing", 0)
            if _positive(smoothing or 0):
                found.append(f"{_class(loss)}(label_smoothing={smoothing})")
    return found
