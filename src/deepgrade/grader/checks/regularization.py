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
PLAIN = SHAPING_LAYERS | {"Dense"}  # the baseline's own kinds: adding more of them regularizes nothing


def _nonzero(value: Any) -> bool:
    """Whether a setting has any strength: a number, or numbers nested in a tuple/list or a serialized object."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, list | tuple):
        return any(_nonzero(v) for v in value)
    if isinstance(value, dict):  # {"class_name": "L2", "config": {"l2": 0.001}}
        inner = value.get("config", value)
        numbers = {k: v for k, v in inner.items() if isinstance(v, int | float | list | tuple) and k != "seed"}
        return any(_nonzero(v) for v in numbers.values()) if numbers else True  # no numbers: a constraint, kept
    return value is not None


def _class(value: Any) -> str:
    return value.get("class_name", "?") if isinstance(value, dict) else str(value)


def regularization_of(model, options=None) -> list[str]:
    """What regularizes ``model``, one phrase each (``[]``: nothing, the baseline as given); ``options`` the
    notebook's training options (:class:`deepgrade.protocol.FitOptions`), for early stopping."""
    found: list[str] = []
    for layer in observe(model):
        config = layer.config
        where = f"layer {layer.position}"
        if layer.kind not in PLAIN:
            strengths = {k: config[k] for k in STRENGTHS if k in config}
            if not strengths or any(_nonzero(v) for v in strengths.values()):
                said = ", ".join(f"{k}={v}" for k, v in strengths.items())
                found.append(f"{layer.kind}({said}) ({where})")
        for key in PENALTIES:
            if config.get(key) is not None and _nonzero(config[key]):
                found.append(f"{key}={_class(config[key])} on {where} ({layer.kind})")
        for key in CONSTRAINTS:
            if config.get(key) is not None:
                found.append(f"{key}={_class(config[key])} on {where} ({layer.kind})")
        for key in RATES:
            if _nonzero(config.get(key, 0)):
                found.append(f"{key}={config[key]} on {where} ({layer.kind})")
    early = getattr(options, "early_stopping", None)
    if early is not None:
        found.append(f"early stopping on {early.monitor} (patience {early.patience}) in fit_options()")
    compiled = model.get_compile_config() if getattr(model, "compiled", False) else None
    if compiled:
        optimizer = compiled.get("optimizer")
        settings = optimizer.get("config", {}) if isinstance(optimizer, dict) else {}
        if _nonzero(settings.get("weight_decay") or 0):
            found.append(f"{_class(optimizer)}(weight_decay={settings['weight_decay']})")
        if settings.get("use_ema"):
            found.append(f"{_class(optimizer)}(use_ema=True)")
        loss = compiled.get("loss")
        smoothing = loss.get("config", {}).get("label_smoothing", 0) if isinstance(loss, dict) else 0
        if _nonzero(smoothing or 0):
            found.append(f"{_class(loss)}(label_smoothing={smoothing})")
    return found
