"""Which Keras backend the trusted grader runs on: tensorflow, jax or torch.

The grader is written against ``keras.ops`` (TensorFlow only for op determinism, the base's SavedModel is not
read by it), so every backend grades the same ``.keras`` file. The student's notebook keeps its own backend
(``KERAS_BACKEND``, TensorFlow by default: a notebook may use TensorFlow itself); the grader's is
``$DEEPGRADE_BACKEND`` (``deepgrade check --backend``), else ``KERAS_BACKEND``, else tensorflow. Every grade
records the backend it ran on (``environment.backend``). Importing this module imports no backend.
"""

from __future__ import annotations

import os

from ..errors import ConfigError, did_you_mean

BACKENDS = ("tensorflow", "jax", "torch")
ENV = "DEEPGRADE_BACKEND"


def grader_backend(chosen: str | None = None) -> str:
    """The grader's backend: ``chosen``, else ``$DEEPGRADE_BACKEND``, else ``$KERAS_BACKEND``, else tensorflow."""
    source = "--backend" if chosen else ENV if os.environ.get(ENV, "").strip() else "KERAS_BACKEND"
    name = (chosen or os.environ.get(ENV, "").strip() or os.environ.get("KERAS_BACKEND", "").strip()
            or "tensorflow").lower()
    if name not in BACKENDS:
        raise ConfigError(f"{source}: expected a Keras backend, one of {', '.join(BACKENDS)}. Received: {name!r}.",
                          tip=did_you_mean(name, BACKENDS) or f"Unset {source} to grade on tensorflow.")
    return name


def process_env(backend: str, threads: int | None = None, gpu_share: int = 0) -> dict[str, str]:
    """Environment for a grader process on ``backend``: the backend, its thread counts on a CPU, and on a GPU
    shared by ``gpu_share`` grader processes (0: no GPU) no up-front claim on all of its memory."""
    env = {"KERAS_BACKEND": backend}
    if threads:
        n = str(threads)
        env.update(OMP_NUM_THREADS=n, TF_NUM_INTRAOP_THREADS=n, TF_NUM_INTEROP_THREADS=n)
        if backend == "jax" and threads == 1:  # XLA's CPU client: one thread, as the pool of workers asked
            env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    if gpu_share:  # JAX claims 75% of a GPU when it starts: workers sharing one must not (see fastfit.gpu_env)
        from .fastfit import gpu_env

        env.update(gpu_env(gpu_share))
    return env
