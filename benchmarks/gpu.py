"""Benchmark: the grader's training of the course's seed CNN, fastfit against plain ``model.fit``, on a GPU.

One row per method, each measured in a fresh process (no compile or autotuning cache carried from one to the
next), on the Keras backend of ``$KERAS_BACKEND``:

- ``fastfit``  ``deepgrade.grader.fastfit.fit`` (JAX: the data on the device once, one compiled call per epoch
               on a GPU, one per batch on a CPU; other backends: it says why it fell back to fit), evaluated with
               ``fastfit.predict_classes``; ``fastfit-scan`` and ``fastfit-step`` force its loop (optional);
- ``fit``      plain ``model.fit(..., shuffle=True, verbose=0)``, evaluated with ``model.predict(batch_size=1024)``,
               as ``deepgrade.grader.training`` does today;
- ``fit-spe``  ``model.fit`` compiled with ``jit_compile=True, steps_per_execution=32`` (optional).

Each trains the seed CNN (solutions/cnn/cnn.ipynb: Conv2D 64 3x3 relu, MaxPooling 2, Conv2D 64 3x3 relu,
MaxPooling 2, Flatten, Dropout 0.2, Dense 10 softmax; the course's compile defaults) under the cnn exercise's
``full`` profile (all 60,000 Fashion-MNIST images; epochs and batch size from course.yml), validating each epoch
on the grader's monitor set as a grade does, then evaluates as a grade does: the classes of the 10,000 test
images (the accuracy) and of the training images (the grader's train accuracy). Columns: the backend and
device; ``compile s``: fastfit's tracing and compiling, or for fit the first epoch's time minus a later
epoch's (both inside ``train s``); ``train s``; ``evaluate s``; ``total s`` (train + evaluate) and the total
without the compile; the test accuracy; ``total / fit``. The goal on one H100: the seed CNN at >= 0.90 test
accuracy in <= 5 s of train + evaluate.

Without a GPU the budget defaults to 5,000 images and 1 epoch. Needs only keras, numpy and the backend (no
TensorFlow on the JAX or PyTorch machine); the data come from the Keras cache (``deepgrade data``; ``KERAS_HOME``).

    KERAS_BACKEND=jax .venv/bin/python benchmarks/gpu.py                    # full profile on a GPU, small on a CPU
    KERAS_BACKEND=jax .venv/bin/python benchmarks/gpu.py --epochs 3 --train-size 20000 --methods fastfit,fit
    KERAS_BACKEND=jax .venv/bin/python benchmarks/gpu.py --precision highest  # no TF32: the accuracy it costs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
METHODS = ("fastfit", "fit", "fit-spe", "fastfit-scan", "fastfit-step")
DEFAULT_METHODS = ("fastfit", "fit", "fit-spe")
STEPS_PER_EXECUTION = 32
CPU_BUDGET = (5000, 1)  # train size, epochs when no GPU is found
MONITOR_SIZE, MONITOR_SHARE = 2000, 5  # the grader's validation curves (deepgrade.grader.training)


# -- one method, in its own process -------------------------------------------------------------------------------

def seed_cnn(compile_):
    import keras
    from keras import layers

    model = keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.2),
        layers.Dense(10, activation="softmax"),
    ])
    optimizer = keras.optimizers.get(compile_.optimizer)
    if compile_.learning_rate is not None:
        optimizer.learning_rate = compile_.learning_rate
    return model, dict(optimizer=optimizer, loss=compile_.loss, metrics=list(compile_.metrics))


def device() -> tuple[str, bool]:
    """The accelerator Keras' backend trains on, in words, and whether it is a GPU."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        d = jax.devices()[0]
        return (f"gpu: {d.device_kind}", True) if d.platform == "gpu" else (d.platform, d.platform != "cpu")
    if backend == "torch":
        import torch

        return (f"gpu: {torch.cuda.get_device_name(0)}", True) if torch.cuda.is_available() else ("cpu", False)
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return (f"gpu: {tf.config.experimental.get_device_details(gpus[0]).get('device_name', 'GPU')}", True) \
            if gpus else ("cpu", False)
    return "cpu", False


def warm_up() -> None:
    """Start the backend on its device (the CUDA context, a first kernel) before anything is timed."""
    import keras
    import numpy as np

    keras.ops.convert_to_numpy(keras.ops.sum(keras.ops.convert_to_tensor(np.ones((256, 256), "float32")) ** 2))


def set_precision(precision: str) -> None:
    import keras

    if precision == "default":
        return
    if keras.backend.backend() == "jax":
        import jax

        jax.config.update("jax_default_matmul_precision", precision)
    elif keras.backend.backend() == "torch":
        import torch

        tf32 = precision in ("high", "tensorfloat32", "default")
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
        torch.set_float32_matmul_precision("highest" if precision in ("highest", "float32") else "high")


def measure(method: str, settings: dict) -> dict:
    """Train and evaluate the seed CNN with ``method``; the row's numbers (run in a fresh process)."""
    import keras
    import numpy as np

    from deepgrade.course import load_course
    from deepgrade.grader import data, fastfit

    set_precision(settings["precision"])
    if settings["policy"]:
        keras.config.set_dtype_policy(settings["policy"])
    where, gpu = device()
    warm_up()
    course = load_course(REPO)
    profile, compile_ = course.profile("cnn", "full"), course.exercise("cnn").compile
    train, test = data.load()
    size, epochs = (profile.train_size or len(train), profile.epochs) if gpu else CPU_BUDGET
    size, epochs = settings["train_size"] or size, settings["epochs"] or epochs
    batch_size = settings["batch_size"] or profile.batch_size
    seed = settings["seed"]

    rng = np.random.default_rng(seed)  # the grader's seeded subset and monitor set (deepgrade.grader.training)
    index = np.sort(rng.permutation(len(train))[:size])
    x, y = train.x[index], train.y[index]
    left = np.setdiff1d(np.arange(len(train)), index)
    n_mon = 0 if settings["no_validation"] else max(1, min(MONITOR_SIZE, len(x) // MONITOR_SHARE))
    pick = np.random.default_rng(seed + 2)
    if len(left):
        chosen = np.sort(pick.permutation(left)[:n_mon])
        x_mon, y_mon = train.x[chosen], train.y[chosen]
    else:
        chosen = np.sort(pick.permutation(len(test))[:n_mon])
        x_mon, y_mon = test.x[chosen], test.y[chosen]
    validation = (x_mon, y_mon) if n_mon else None

    keras.utils.set_random_seed(seed)
    model, compiled = seed_cnn(compile_)
    if method == "fit-spe":
        compiled.update(jit_compile=True, steps_per_execution=STEPS_PER_EXECUTION)
    model.compile(**compiled)
    epoch_ends: list[float] = []
    timer = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: epoch_ends.append(time.monotonic()))

    start = time.monotonic()
    reason, compile_seconds, loop = "", float("nan"), ""
    if method.startswith("fastfit"):
        history = fastfit.fit(model, x, y, epochs=epochs, batch_size=batch_size, validation_data=validation,
                              callbacks=[timer], seed=seed, loop=method.partition("-")[2] or "auto")
        reason, compile_seconds, loop = history.reason, history.compile_seconds, history.loop
    else:
        history = model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0,
                            validation_data=validation, callbacks=[timer]).history
    trained = time.monotonic()
    if method.startswith("fastfit"):
        predicted_test = fastfit.predict_classes(model, test.x, batch_size=settings["eval_batch_size"])
        predicted_train = fastfit.predict_classes(model, x, batch_size=settings["eval_batch_size"])
    else:
        predicted_test = np.argmax(model.predict(test.x, batch_size=1024, verbose=0), axis=-1)
        predicted_train = np.argmax(model.predict(x, batch_size=1024, verbose=0), axis=-1)
    evaluated = time.monotonic()

    epoch_seconds = np.diff([start, *epoch_ends]).tolist()
    if compile_seconds != compile_seconds and len(epoch_seconds) > 1:  # fit: the first epoch's extra time
        compile_seconds = max(0.0, epoch_seconds[0] - statistics.median(epoch_seconds[1:]))
    return {
        "method": method + (f" ({loop})" if method == "fastfit" and loop else ""), "backend": keras.backend.backend(), "device": where,
        "reason": reason,
        "train_size": len(x), "epochs": epochs, "epochs_run": len(history["loss"]), "batch_size": batch_size,
        "validation": n_mon, "compile": compile_seconds, "train": trained - start, "evaluate": evaluated - trained,
        "accuracy": float(np.mean(predicted_test == test.y)), "train_accuracy": float(np.mean(predicted_train == y)),
        "epoch_seconds": epoch_seconds,
    }


# -- the table ----------------------------------------------------------------------------------------------------

def fmt(value: float, digits: int = 2) -> str:
    return "-" if value != value else f"{value:.{digits}f}"  # NaN -> "-"


def table(header: list[str], rows: list[list[str]], indent: str = "  ") -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells):
        return indent + "  ".join(str(c).ljust(w) if i < 3 else str(c).rjust(w)
                                  for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([line(header), indent + "  ".join("-" * w for w in widths), *map(line, rows)])


def run_child(method: str, args: argparse.Namespace) -> dict:
    from deepgrade.grader.fastfit import gpu_env  # imports no backend

    settings = json.dumps({k: getattr(args, k) for k in ("train_size", "epochs", "batch_size", "seed", "precision",
                                                          "policy", "eval_batch_size", "no_validation")})
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **gpu_env(1, compilation_cache=args.compilation_cache)}
    proc = subprocess.run([sys.executable, __file__, "--child", method, settings], cwd=REPO, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise SystemExit(f"{method} failed with exit code {proc.returncode}:\n{tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                        help=f"comma-separated, in the table's order, of {', '.join(METHODS)} "
                             f"({','.join(DEFAULT_METHODS)})")
    parser.add_argument("--train-size", type=int, default=None, help="training images (full profile: 60,000; "
                        f"no GPU: {CPU_BUDGET[0]:,})")
    parser.add_argument("--epochs", type=int, default=None, help=f"epochs (full profile; no GPU: {CPU_BUDGET[1]})")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size (full profile)")
    parser.add_argument("--seed", type=int, default=1, help="the grader's seed (1)")
    parser.add_argument("--precision", default="default",
                        choices=["default", "high", "highest", "tensorfloat32", "bfloat16", "float32"],
                        help="float32 matmul/conv precision (JAX: jax_default_matmul_precision; default: the "
                             "backend's own, TF32 on an H100 under JAX)")
    parser.add_argument("--policy", default="", help="a Keras dtype policy for the model, e.g. mixed_bfloat16")
    parser.add_argument("--eval-batch-size", type=int, default=4096, help="fastfit's evaluation batch (4096)")
    parser.add_argument("--no-validation", action="store_true", help="no per-epoch validation on the monitor set")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each method, each in a fresh process (1)")
    parser.add_argument("--compilation-cache", metavar="DIR", default=None,
                        help="JAX's persistent compilation cache for every run (with --repeat 2: a warm cache's "
                             "compile time, as grader workers sharing one would see it)")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "SETTINGS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not args.methods or set(args.methods) - set(METHODS):
        parser.error(f"--methods: expected some of {', '.join(METHODS)}. Received: {','.join(args.methods)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.repeat < 1:
        raise SystemExit("--repeat must be positive")
    if args.child:
        print(json.dumps(measure(args.child[0], json.loads(args.child[1]))))
        return 0
    from deepgrade.grader.environment import package_version

    versions = ", ".join(f"{d} {package_version(d)}" for d in ("keras", "jax", "jaxlib", "torch") if package_version(d))
    print("deepgrade GPU training benchmark: the seed CNN, fastfit vs model.fit")
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"machine: {os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}, {versions}; "
          f"KERAS_BACKEND={os.environ.get('KERAS_BACKEND', '(unset: tensorflow)')}")
    sys.stdout.flush()
    rows = []
    for r in range(args.repeat):
        for method in args.methods:
            rows.append(run_child(method, args))
            if args.repeat > 1:
                rows[-1]["method"] += f" #{r + 1}"
    first = rows[0]
    print(f"budget: {first['train_size']:,} training images, {first['epochs']} epochs, batch {first['batch_size']}, "
          f"validation on {first['validation']:,} images each epoch; evaluate: 10,000 test + {first['train_size']:,} "
          f"training images; seed {args.seed}; precision {args.precision}"
          + (f"; policy {args.policy}" if args.policy else "")
          + (f"; compilation cache {args.compilation_cache}" if args.compilation_cache else ""))
    plain = next((row for row in rows if row["method"].split(" ")[0] == "fit"), None)
    header = ["method", "backend", "device", "compile s", "train s", "evaluate s", "total s", "total - compile s",
              "test acc", "epochs", "total / fit"]
    lines = []
    for row in rows:
        total = row["train"] + row["evaluate"]
        ratio = total / (plain["train"] + plain["evaluate"]) if plain else float("nan")
        lines.append([row["method"], row["backend"], row["device"], fmt(row["compile"]), fmt(row["train"]),
                      fmt(row["evaluate"]), fmt(total), fmt(total - row["compile"]) if row["compile"] == row["compile"]
                      else "-", f"{row['accuracy']:.4f}", f"{row['epochs_run']}/{row['epochs']}", fmt(ratio)])
    print(table(header, lines))
    for row in rows:
        if row["reason"]:
            print(f"  {row['method']} ran model.fit: {row['reason']}")
        print(f"  {row['method']}: seconds per epoch {', '.join(fmt(s) for s in row['epoch_seconds'])}; "
              f"train accuracy {row['train_accuracy']:.4f}")
    print("  (compile s: fastfit's tracing + XLA compile; for fit, the first epoch minus a later one (- with one "
          "epoch). Both are inside train s. total / fit: this row's train + evaluate over plain fit's.)")
    fast = next((row for row in rows if row["method"].startswith("fastfit")), None)
    if fast and fast["device"].startswith("gpu"):
        total = fast["train"] + fast["evaluate"]
        met = fast["accuracy"] >= 0.90 and total <= 5.0
        print(f"  goal (>= 0.90 test accuracy in <= 5 s of train + evaluate): {'met' if met else 'not met'} "
              f"({fast['accuracy']:.4f} in {total:.2f} s, {total - fast['compile']:.2f} s without the compile)")
    return 0



if __name__ == "__main__":
    raise SystemExit(main())
