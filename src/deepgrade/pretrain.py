"""``deepgrade pretrain``: train the course's feature extractor on its source task and write it at its handle.

Reproducible: the seed, the source classes and the budget come from course.yml, op determinism is on, and
the manifest records the weights' sha256 beside versions and device. Trusted (it uses the grader's data and
training helpers); the files it writes are described in :mod:`deepgrade.pretrained`.
"""

from __future__ import annotations

import time
from pathlib import Path

from .course import LoadedCourse, Pretrain, Profile
from .errors import ConfigError
from .grader import Task, accuracy, describe, seed_everything, training_data
from .pretrained import base_architecture, export_base


def pretrain(course: LoadedCourse, exercise: str, out: Path | None = None) -> dict:
    """Build the base that course.yml describes (``transfer.pretrain``) at its handle (or ``out``)."""
    ex = course.exercise(exercise)
    if ex.transfer is None or ex.transfer.pretrain is None:
        raise ConfigError(f"{course.path}: exercises.{exercise}.transfer.pretrain: expected the source task "
                          "(source_classes, epochs, seed) that `deepgrade pretrain` trains the base on.")
    return pretrain_base(ex.transfer.pretrain, Path(out) if out else Path(course.base_handle(exercise)))


def pretrain_base(spec: Pretrain, out: Path) -> dict:
    """Train the base on the source task ``spec`` and write it as a SavedModel at ``out``."""
    import keras

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
    env = describe()
    manifest = export_base(base, out, {
        "source_classes": list(spec.source_classes), "images_per_class": spec.images_per_class,
        "images": int(len(x)), "epochs": spec.epochs, "batch_size": spec.batch_size, "seed": spec.seed,
        "source_test_accuracy": round(accuracy(model, x_test, y_test), 4), "train_seconds": round(seconds, 1),
        "device": env["device"], "backend": env["backend"], "versions": env["versions"],
    })
    return {"path": str(out), **manifest}
