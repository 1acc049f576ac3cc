"""Which device grades, which profile that implies, and the versions every grade records."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

from ..course import PROFILES
from ..errors import ConfigError, did_you_mean


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


PROFILE_ENV = "DEEPGRADE_PROFILE"  # overrides the profile chosen from the device


def default_profile() -> str:
    """``full`` on a GPU, ``smoke`` on a CPU; ``$DEEPGRADE_PROFILE`` overrides (smoke or full)."""
    chosen = os.environ.get(PROFILE_ENV, "").strip()
    if chosen:
        if chosen not in PROFILES:
            raise ConfigError(f"{PROFILE_ENV}: expected one of {', '.join(PROFILES)}. Received: {chosen!r}.",
                              tip=did_you_mean(chosen, PROFILES) or f"Unset {PROFILE_ENV} to choose from the device.")
        return chosen
    return "full" if has_gpu() else "smoke"


BACKEND_PACKAGES = {"tensorflow": ("tensorflow-cpu", "tensorflow"), "jax": ("jax", "jaxlib"), "torch": ("torch",)}


def device_name() -> str:
    """What trains: the GPU's name (e.g. "NVIDIA H100 80GB HBM3"), else the processor's."""
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            gpus = [d for d in jax.devices() if d.platform == "gpu"]
            if gpus:
                return gpus[0].device_kind
        elif backend == "torch":
            import torch

            if torch.cuda.is_available():
                return torch.cuda.get_device_name(0)
        elif backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    except Exception:  # noqa: BLE001 - a name is a nicety, never a reason to lose a grade
        pass
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if names:
            return names[0]
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def threads() -> int:
    """The CPU threads a grade's operations may use (the grader pool's share, else every core): TensorFlow's CPU
    results differ in the 4th decimal with it (oneDNN's reductions are ordered per thread), so a grade records it."""
    for name in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may run on
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def describe() -> dict:
    """Seed-independent facts about the grading machine, recorded with every grade."""
    import keras

    backend = keras.backend.backend()
    names = ("deepgrade", "keras", *BACKEND_PACKAGES[backend], "numpy")
    versions = {name: package_version(name) for name in names}
    return {
        "device": "gpu" if has_gpu() else "cpu",
        "device_name": device_name(),
        "backend": keras.backend.backend(),
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "cpu_count": os.cpu_count(),
        "threads": threads(),
        "versions": {k: v for k, v in versions.items() if v},
        "executable": sys.executable,
    }
