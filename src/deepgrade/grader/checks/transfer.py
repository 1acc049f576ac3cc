"""The transfer exercise's checks: find the course's base in a student's model, restore its pretrained weights,
train the head first, and judge frozen feature extraction and fine-tuning."""

from __future__ import annotations

import numpy as np

from ...errors import CheckFailed, StudentCodeError, first_line
from ..training import Warmup
from .metrics import describe_optimizer, require_threshold


def _signature(model) -> list[tuple[str, tuple]]:
    return [(type(layer).__name__, tuple(tuple(w.shape) for w in layer.weights)) for layer in model.layers]


def find_base(model, base):
    """The layer of ``model`` that is the course's base (a nested model named like it, with its layers)."""
    import keras

    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    found = next((layer for layer in nested if layer.name == base.name), None)
    if found is None:
        seen = ", ".join(f"{type(layer).__name__}({layer.name!r})" for layer in model.layers) or "no layers"
        raise StudentCodeError(
            f"Expected the pretrained base as one layer of the model, named {base.name!r} "
            f"(e.g. keras.Sequential([base, ...]) or x = base(inputs, training=False)). Received: {seen}. "
            "Build the model on the `base` that build_model(base) is given, without taking its layers apart.")
    if _signature(found) != _signature(base):
        raise StudentCodeError(
            f"The layer {base.name!r} is not the course's base: expected layers "
            f"{[n for n, _ in _signature(base)]} with weights {[s for _, s in _signature(base)]}. Received: "
            f"{[n for n, _ in _signature(found)]} with weights {[s for _, s in _signature(found)]}. "
            "Use the base as given; add your own layers after it.")
    return found


def restore(base):
    """``prepare`` hook: put the pretrained weights back into the fresh copy's base (trainable as the student set it)."""
    def prepare(fresh) -> None:
        find_base(fresh, base).set_weights(base.get_weights())

    return prepare


def head_first(base, spec, profile) -> Warmup:
    """The fine-tuning run's warm-up: ``spec.finetune_warmup`` of the profile's epochs with the base frozen."""
    return Warmup(round(profile.epochs * spec.finetune_warmup), lambda fresh: find_base(fresh, base))


def head_alone(model, base):
    """The student's head, freshly initialised, on the raw pixels instead of the base's features.

    What "the same head trained from scratch on the same images" is compared with: it shows what the
    pretrained features add. The copy keeps the student's compile settings.
    """
    import keras

    head = head_layers(model, base, with_weights=False)
    try:
        alone = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                                  *[layer.__class__.from_config(layer.get_config()) for layer in head]],
                                 name="head_alone")
    except Exception as exc:  # noqa: BLE001
        raise StudentCodeError(f"The head cannot be trained on its own on flattened images, as the gain check does "
                               f"({type(exc).__name__}: {first_line(exc)}). "
                               "Expected a head of Dense, Dropout and normalization layers after the base.") from None
    if getattr(model, "compiled", False) and model.get_compile_config():
        alone.compile_from_config(model.get_compile_config())
    return alone


def head_layers(model, base, with_weights: bool = True) -> list:
    """The model's layers after the base, in order (only those with weights, unless ``with_weights=False``)."""
    import keras

    inner = find_base(model, base)
    layers = [layer for layer in model.layers if layer is not inner and not isinstance(layer, keras.layers.InputLayer)]
    return [layer for layer in layers if layer.weights or not with_weights]


def check_base_used(model, base) -> str:
    find_base(model, base)
    return f"the pretrained base {base.name!r} is a layer of the model ({base.count_params():,} parameters)."


def check_base_frozen(model, base) -> str:
    inner = find_base(model, base)
    trainable = [w.path for w in inner.weights if w.trainable]
    if inner.trainable and trainable:
        raise CheckFailed(
            f"Expected the base frozen for feature extraction: base.trainable = False. Received: "
            f"{len(trainable)} trainable weights in the base (e.g. {trainable[0]}). Set `base.trainable = False` "
            "before building the model; fine-tuning belongs in build_finetune_model(base).")
    return f"the base is frozen: its {len(inner.weights)} weights are not trained."


def check_head_new(model, base, num_classes: int) -> str:
    head = head_layers(model, base)
    trainable = [layer for layer in head if layer.trainable_weights]
    if not trainable:
        raise CheckFailed(
            f"Expected a new head: trainable layers after the base ending in {num_classes} class scores. "
            f"Received: no trainable layer outside the base. Add e.g. layers.Dense({num_classes}, activation='softmax').")
    last = head[-1]
    units = getattr(last, "units", None)
    if units != num_classes:
        raise CheckFailed(f"The head's last layer {type(last).__name__}({last.name!r}): expected {num_classes} units, "
                          f"one per class of the target task. Received: {units}.")
    params = sum(layer.count_params() for layer in head)
    return f"a new head of {len(head)} layer(s), {params:,} parameters, ending in {num_classes} class scores."


def check_fine_tuning(model, base, training, threshold: float | None) -> str:
    inner = find_base(model, base)
    if not [w for w in inner.weights if w.trainable]:
        raise CheckFailed("build_finetune_model(base): expected the base unfrozen (base.trainable = True) so that "
                          "training changes its weights. Received: a frozen base.")
    tuned = find_base(training.model, base).get_weights()
    change = max(float(np.max(np.abs(a - b))) for a, b in zip(tuned, base.get_weights(), strict=True))
    if change == 0.0:
        raise CheckFailed("build_finetune_model(base): expected training to change the base's weights. Received: "
                          f"no change.{_tuned_with(training)} Unfreeze the base and compile the model with a "
                          "trainable optimizer.")
    threshold = require_threshold(threshold, "fine_tuning")
    if training.test_accuracy < threshold:
        raise CheckFailed(
            f"Fine-tuning collapsed: expected test accuracy of at least {threshold:.3f}. Received: "
            f"{training.test_accuracy:.4f} ({training.budget()}).{_tuned_with(training)} Fine-tune with a small "
            "learning rate, e.g. keras.optimizers.Adam(1e-4), so the pretrained features are not destroyed.")
    return (f"fine-tuned: the base's weights moved (largest change {change:.2g}) and test accuracy is "
            f"{training.test_accuracy:.4f} >= {threshold:.3f} ({training.budget()}).")


def _tuned_with(training) -> str:
    """A sentence naming the optimizer the fine-tuning epochs ran with, and whose it was (in this check the
    optimizer is the exercise); empty when it is not known."""
    optimizer = getattr(training.model, "optimizer", None)
    if optimizer is None:
        return ""
    if training.compiled_by == "course":
        return (" build_finetune_model(base) returned an uncompiled model, so the fine-tuning epochs ran with the "
                f"course's default, {describe_optimizer(optimizer)}.")
    return f" The fine-tuning epochs ran with {describe_optimizer(optimizer)}, as build_finetune_model(base) compiled it."
