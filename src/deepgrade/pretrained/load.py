"""Loading the course's pretrained feature extractor (for the student's notebook, the sandbox and the grader).

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

The trusted grader reads neither TensorFlow nor the SavedModel: a base built by
``deepgrade pretrain`` also carries its weights as a plain numpy archive
(``assets/deepgrade_base.weights.npz``, one array per variable path, no pickles),
which :func:`load_base` with ``neutral=True`` reads on any Keras backend
(TensorFlow, JAX, PyTorch), checking their sha256 against the manifest's.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ConfigError, StudentCodeError
from ..protocol import files, refuse_unsafe

KERAS_CONFIG = "assets/deepgrade_base.json"  # the base's Keras config, inside the SavedModel folder
MANIFEST = "assets/deepgrade_pretrain.json"
WEIGHTS = "assets/deepgrade_base.weights.npz"  # the same weights, backend-neutral (numpy), for the grader  # how it was built: seed, classes, budget, versions, weights digest
BASE_NAME = "pretrained_base"
LOCAL_COPY = files.BASE  # beside the exercise notebook: released there by nbgrader, placed there by the sandbox


def resolve(handle: str | None = None) -> Path:
    """A local folder for ``handle``, through tensorflow_hub.

    Default: ./pretrained_base (the copy released beside the notebook, or placed there by the sandbox),
    else course.yml's handle.
    """
    if not handle and (Path.cwd() / LOCAL_COPY / "saved_model.pb").is_file():
        handle = str(Path.cwd() / LOCAL_COPY)
    handle = handle or _course_handle()
    if "://" not in str(handle) and not (Path(handle) / "saved_model.pb").is_file():
        raise ConfigError(f"The pretrained base is missing: expected a SavedModel folder (holding saved_model.pb). "
                          f"Received: {handle}.", tip="Build the course's own base with `deepgrade pretrain transfer`.")
    if "://" not in str(handle):
        return Path(handle)  # a local folder is its own resolution (without importing TensorFlow for it)
    import tensorflow_hub as hub

    try:
        return Path(hub.resolve(str(handle)))
    except Exception as exc:  # noqa: BLE001 - any failure to reach the handle is said plainly
        raise ConfigError(f"Could not resolve the pretrained base: expected a SavedModel folder or a TF Hub / "
                          f"Kaggle URL. Received: {handle!r} ({type(exc).__name__}: {exc}).",
                          tip="Offline, build the course's own base with `deepgrade pretrain transfer`.") from None


def _course_handle() -> str:
    from ..course import load_course

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


def load_base(handle: str | None = None, *, neutral: bool = False):
    """The pretrained feature extractor as a frozen Keras 3 model named ``pretrained_base``.

    ``neutral``: from its Keras config and numpy weights (any backend, no TensorFlow), as the grader loads it.
    """
    path = resolve(handle)
    if neutral:
        return _load_neutral(path)
    import keras
    import tensorflow_hub as hub

    if not (path / "saved_model.pb").is_file():
        raise ConfigError(f"The pretrained base is not a SavedModel: expected {path / 'saved_model.pb'}.",
                          tip="Rebuild it with `deepgrade pretrain transfer`.")
    if not is_course_base(path):
        layer = keras.layers.TFSMLayer(str(path), call_endpoint="serving_default", trainable=False)
        return keras.Sequential([layer], name=BASE_NAME)
    model = _from_config(path)
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


def _from_config(path: Path):
    """The base's architecture from its Keras config (built-in layers only, nothing that carries data)."""
    import keras

    config = json.loads((path / KERAS_CONFIG).read_text())
    try:
        refuse_unsafe(config)
    except StudentCodeError as exc:
        raise ConfigError(f"{path / KERAS_CONFIG}: {exc}") from None
    return keras.models.model_from_json(json.dumps(config))


def _load_neutral(path: Path):
    import numpy as np

    from .build import weights_digest

    if not is_course_base(path) or not (path / WEIGHTS).is_file():
        raise ConfigError(f"{path}: expected the base's Keras config and numpy weights ({KERAS_CONFIG}, {WEIGHTS}), "
                          "which the grader loads on any backend. Received: "
                          f"{'no ' + WEIGHTS if is_course_base(path) else 'a SavedModel without them'}.",
                          tip="Rebuild it with `deepgrade pretrain transfer`.")
    model = _from_config(path)
    with np.load(path / WEIGHTS, allow_pickle=False) as stored:
        for weight in model.weights:
            key = _key(weight.path)
            if key not in stored.files or tuple(stored[key].shape) != tuple(weight.shape):
                raise ConfigError(f"{path / WEIGHTS}: no array {key!r} of shape {tuple(weight.shape)}; its config "
                                  "and weights disagree. Rebuild it with `deepgrade pretrain transfer`.")
            weight.assign(stored[key])
    expected = json.loads((path / MANIFEST).read_text()).get("weights_sha256") if (path / MANIFEST).is_file() else None
    if expected and weights_digest(model) != expected:
        raise ConfigError(f"{path / WEIGHTS}: its weights' sha256 is not the manifest's ({expected[:12]}...): the "
                          "file does not hold the pretrained base. Rebuild it with `deepgrade pretrain transfer`.")
    model.trainable = False
    return model


def _key(path: str) -> str:
    """A variable's path without the ':0' TensorFlow adds or the model's name in front (set at build time)."""
    return path.removesuffix(":0").removeprefix(f"{BASE_NAME}/")
