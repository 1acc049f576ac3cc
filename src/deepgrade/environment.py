"""Which device grades, which profile that implies, and the versions every grade records."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata


def has_gpu() -> bool:
    """Whether the trusted grader's Keras backend sees a GPU."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    if backend == "jax":
        import jax

        return any(d.platform == "gpu" for d in jax.devices())
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    return False


def default_profile() -> str:
    """``full`` on a GPU, ``smoke`` on a CPU; ``DEEPGRADE_PROFILE`` overrides."""
    chosen = os.environ.get("DEEPGRADE_PROFILE")
    if chosen:
        return chosen
    return "full" if has_gpu() else "smoke"


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def describe() -> dict:
    """Seed-independent facts about the grading machine, recorded with every grade."""
    import keras

    versions = {name: _version(name) for name in ("deepgrade", "keras", "tensorflow-cpu", "tensorflow", "numpy")}
    return {
        "device": "gpu" if has_gpu() else "cpu",
        "backend": keras.backend.backend(),
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "cpu_count": os.cpu_count(),
        "versions": {k: v for k, v in versions.items() if v},
        "executable": sys.executable,
    }
