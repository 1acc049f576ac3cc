"""The course's base as files: its architecture, and the SavedModel (+ Keras config and manifest) written for it.

`deepgrade pretrain` (:mod:`deepgrade.pretrain`) trains it; :mod:`.load` reads it back.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from .load import BASE_NAME, KERAS_CONFIG, MANIFEST, WEIGHTS, _key


def weights_digest(model) -> str:
    """sha256 of a model's weights as float32, in order: what the manifest records."""
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w, dtype="float32").tobytes())
    return h.hexdigest()


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


def export_base(base, out: Path, manifest: dict) -> dict:
    """Write ``base`` at ``out`` as a SavedModel with its Keras config and ``manifest`` (+ weights sha256) as assets."""
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    base.export(str(out), verbose=False)
    (out / "assets").mkdir(exist_ok=True)
    (out / KERAS_CONFIG).write_text(json.dumps(json.loads(base.to_json()), indent=1, sort_keys=True) + "\n")
    manifest = {**manifest, "parameters": int(base.count_params()), "weights_sha256": weights_digest(base)}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    write_weights(base, out)
    return manifest


def write_weights(base, out: Path) -> Path:
    """The base's weights as a numpy archive beside its config (what the grader loads on any backend)."""
    from keras import ops

    arrays = {_key(w.path): np.asarray(ops.convert_to_numpy(w), dtype="float32") for w in base.weights}
    target = Path(out) / WEIGHTS
    with open(target, "wb") as f:  # np.savez on a file object: no ".npz" appended, a stable file for the digests
        np.savez(f, **arrays)
    return target


if __name__ == "__main__":  # add the numpy weights to a base built before they existed (read through its SavedModel)
    import sys

    from .load import load_base

    for folder in sys.argv[1:]:
        print(write_weights(load_base(folder), Path(folder)))
