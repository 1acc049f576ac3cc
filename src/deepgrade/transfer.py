"""Transfer learning: the course's pretrained feature extractor, how it is built, loaded and graded.

The base is a TensorFlow SavedModel reached through ``tensorflow_hub`` from the
handle in course.yml (``transfer.handle``): offline, the folder that
``deepgrade pretrain`` writes; online, a TF Hub / Kaggle URL that
``hub.resolve`` downloads and caches.

Two traps of TF 2.21 / Keras 3 decide how it is turned into a layer:
``hub.KerasLayer`` is a tf_keras (Keras 2) layer that cannot sit in a Keras 3
model, and ``keras.layers.TFSMLayer`` cannot be fine-tuned with Adam (its
variables are named ``...:0``). So a base built by ``deepgrade pretrain``
carries its Keras config as a SavedModel asset: :func:`load_base` rebuilds
native Keras 3 layers from it (built-in layers only) and copies the
SavedModel's variables in, by name. Such a base freezes and fine-tunes like
any Keras model, and the trusted grader can restore its pretrained weights
itself instead of trusting the ones in a student's file.

A SavedModel without that asset (an online feature vector) is wrapped in a
frozen ``TFSMLayer`` for exploring in a notebook; the grader refuses it (see
README, "Transfer learning").
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .architecture import CheckFailed, require_threshold
from .errors import ConfigError, StudentCodeError

KERAS_CONFIG = "assets/deepgrade_base.json"  # the base's Keras config, inside the SavedModel folder
MANIFEST = "assets/deepgrade_pretrain.json"  # how it was built: seed, classes, budget, versions, weights digest
BASE_NAME = "pretrained_base"

if TYPE_CHECKING:
    from .trusted import Warmup


LOCAL_COPY = "pretrained_base"  # released beside the exercise notebook by nbgrader


def resolve(handle: str | None = None) -> Path:
    """A local folder for ``handle``, through tensorflow_hub.

    Default: $DEEPGRADE_BASE (set by the sandbox), else ./pretrained_base (the copy released beside the
    notebook), else course.yml's handle.
    """
    if not handle and not os.environ.get("DEEPGRADE_BASE") and (Path.cwd() / LOCAL_COPY / "saved_model.pb").is_file():
        handle = str(Path.cwd() / LOCAL_COPY)
    handle = handle or os.environ.get("DEEPGRADE_BASE") or _course_handle()
    if "://" not in str(handle) and not (Path(handle) / "saved_model.pb").is_file():
        raise ConfigError(f"The pretrained base is missing: expected a SavedModel folder (holding saved_model.pb). "
                          f"Received: {handle}.", tip="Build the course's own base with `deepgrade pretrain transfer`.")
    import tensorflow_hub as hub

    try:
        return Path(hub.resolve(str(handle)))
    except Exception as exc:  # noqa: BLE001 - any failure to reach the handle is said plainly
        raise ConfigError(f"Could not resolve the pretrained base: expected a SavedModel folder or a TF Hub / "
                          f"Kaggle URL. Received: {handle!r} ({type(exc).__name__}: {exc}).",
                          tip="Offline, build the course's own base with `deepgrade pretrain transfer`.") from None


def _course_handle() -> str:
    from .config import load_course

    course = load_course()
    for name, ex in course.course.exercises.items():
        if ex.transfer is not None:
            return course.base_handle(name)
    raise ConfigError(f"{course.path}: no exercise has a `transfer:` section, so there is no pretrained base.")


def takes_base(fn) -> bool:
    """Whether an entry function expects the pretrained base: it has a required positional parameter."""
    import inspect

    try:
        return any(p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                   for p in inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False


def is_course_base(path: Path) -> bool:
    return (Path(path) / KERAS_CONFIG).is_file()


def load_base(handle: str | None = None):
    """The pretrained feature extractor as a frozen Keras 3 model named ``pretrained_base``."""
    import keras
    import tensorflow_hub as hub

    path = resolve(handle)
    if not (path / "saved_model.pb").is_file():
        raise ConfigError(f"The pretrained base is not a SavedModel: expected {path / 'saved_model.pb'}.",
                          tip="Rebuild it with `deepgrade pretrain transfer`.")
    if not is_course_base(path):
        layer = keras.layers.TFSMLayer(str(path), call_endpoint="serving_default", trainable=False)
        return keras.Sequential([layer], name=BASE_NAME)
    from .trusted import refuse_unsafe

    config = json.loads((path / KERAS_CONFIG).read_text())
    try:
        refuse_unsafe(config)
    except StudentCodeError as exc:
        raise ConfigError(f"{path / KERAS_CONFIG}: {exc}") from None
    model = keras.models.model_from_json(json.dumps(config))
    saved = hub.load(str(path))
    by_name = {_key(v.name): v for v in saved.variables}
    for weight in model.weights:
        source = by_name.get(_key(weight.path))
        if source is None or tuple(source.shape) != tuple(weight.shape):
            raise ConfigError(f"{path}: the SavedModel has no variable {weight.path!r} of shape {tuple(weight.shape)}; "
                              "its config and variables disagree. Rebuild it with `deepgrade pretrain transfer`.")
        weight.assign(source.numpy())
    model.trainable = False
    return model


def _key(path: str) -> str:
    """A variable's path without the ':0' TensorFlow adds or the model's name in front (set at build time)."""
    return path.removesuffix(":0").removeprefix(f"{BASE_NAME}/")


def weights_digest(model) -> str:
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w, dtype="float32").tobytes())
    return h.hexdigest()


# --- building the base: `deepgrade pretrain` ------------------------------------------

def base_architecture():
    """The feature extractor: two conv blocks, flattened (1,600 features per image)."""
    import keras
    from keras import layers

    return keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
    ], name=BASE_NAME)


def pretrain(course, exercise: str, out: Path | None = None) -> dict:
    """``deepgrade pretrain``: build the base that course.yml describes (``transfer.pretrain``) at its handle."""
    ex = course.exercise(exercise)
    if ex.transfer is None or ex.transfer.pretrain is None:
        raise ConfigError(f"{course.path}: exercises.{exercise}.transfer.pretrain: expected the source task "
                          "(source_classes, epochs, seed) that `deepgrade pretrain` trains the base on.")
    return pretrain_base(ex.transfer.pretrain, Path(out) if out else Path(course.base_handle(exercise)))


def pretrain_base(spec, out: Path) -> dict:
    """Train the base on the source task ``spec`` and write it as a SavedModel at ``out``.

    Reproducible: the seed, the source classes and the budget come from course.yml, op determinism is on,
    and the manifest records the weights' sha256 beside versions and device.
    """
    import keras

    from .config import Profile
    from .environment import describe
    from .trusted import Task, accuracy, seed_everything, training_data

    seed_everything(spec.seed)
    task = Task(tuple(spec.source_classes), spec.images_per_class)
    x, y, x_test, y_test = training_data(Profile(epochs=spec.epochs), spec.seed, task)
    base = base_architecture()
    # Shifted copies while pretraining (augmentation outside the base) make features that transfer better.
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.RandomTranslation(0.1, 0.1), base,
                              keras.layers.Dropout(0.3), keras.layers.Dense(task.num_classes, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.monotonic()
    model.fit(x, y, epochs=spec.epochs, batch_size=spec.batch_size, shuffle=True, verbose=0)
    seconds = time.monotonic() - start
    source_accuracy = accuracy(model, x_test, y_test)
    if out.exists():
        import shutil

        shutil.rmtree(out)
    base.export(str(out), verbose=False)
    (out / "assets").mkdir(exist_ok=True)
    (out / KERAS_CONFIG).write_text(json.dumps(json.loads(base.to_json()), indent=1, sort_keys=True) + "\n")
    env = describe()
    manifest = {
        "source_classes": list(spec.source_classes), "images_per_class": spec.images_per_class,
        "images": int(len(x)), "epochs": spec.epochs, "batch_size": spec.batch_size, "seed": spec.seed,
        "source_test_accuracy": round(source_accuracy, 4), "train_seconds": round(seconds, 1),
        "parameters": int(base.count_params()), "weights_sha256": weights_digest(base),
        "device": env["device"], "backend": env["backend"], "versions": env["versions"],
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return {"path": str(out), **manifest}


# --- grading: find the base in a student's model, restore it, compare ------------------------

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
    from .trusted import Warmup

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
                               f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
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


def check_gain(transfer, scratch, threshold: float | None) -> str:
    """The pretrained features must add accuracy over the same head trained on the raw pixels."""
    threshold = require_threshold(threshold, "gain")
    gain = transfer.test_accuracy - scratch.test_accuracy
    said = (f"test accuracy with the pretrained base {transfer.test_accuracy:.4f}, the same head alone on the "
            f"pixels, from scratch, {scratch.test_accuracy:.4f}; both {scratch.budget()}")
    if gain < threshold:
        raise CheckFailed(f"Transfer should beat training from scratch: expected a gain of at least {threshold:+.3f}. "
                          f"Received: {gain:+.4f} ({said}). Keep the base frozen and its features as they are; "
                          "a small head (one Dense layer, maybe Dropout) learns best from 100 images per class.")
    return f"gain {gain:+.4f} >= {threshold:+.3f}: {said}."


def check_fine_tuning(model, base, training, threshold: float | None) -> str:
    inner = find_base(model, base)
    if not [w for w in inner.weights if w.trainable]:
        raise CheckFailed("build_finetune_model(base): expected the base unfrozen (base.trainable = True) so that "
                          "training changes its weights. Received: a frozen base.")
    tuned = find_base(training.model, base).get_weights()
    change = max(float(np.max(np.abs(a - b))) for a, b in zip(tuned, base.get_weights()))
    if change == 0.0:
        raise CheckFailed("build_finetune_model(base): expected training to change the base's weights. Received: "
                          "no change. Unfreeze the base and compile the model with a trainable optimizer.")
    threshold = require_threshold(threshold, "fine_tuning")
    if training.test_accuracy < threshold:
        raise CheckFailed(
            f"Fine-tuning collapsed: expected test accuracy of at least {threshold:.3f}. Received: "
            f"{training.test_accuracy:.4f} ({training.budget()}). Fine-tune with a small learning rate, "
            "e.g. keras.optimizers.Adam(1e-4), so the pretrained features are not destroyed.")
    return (f"fine-tuned: the base's weights moved (largest change {change:.2g}) and test accuracy is "
            f"{training.test_accuracy:.4f} >= {threshold:.3f} ({training.budget()}).")
