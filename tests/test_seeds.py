"""Seeds trained together (deepgrade.grader.seeds, `calibrate --batch`): a seed's training does not depend on the
seeds beside it, and a calibration trained in company grades each seed on its own training."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

COMPANY = """
import json, sys
import numpy as np
from deepgrade.course import load_course
from deepgrade.grader.loading import load_model
from deepgrade.grader.seeds import BATCHED, train_many, unbatchable
from deepgrade.grader.training import Warmup, train_and_evaluate
from deepgrade.protocol import FitOptions

course = load_course()
exercise = course.exercise("mlp")
profile = course.profile("mlp", "smoke").model_copy(update={"train_size": 2000, "epochs": 1})
model = load_model(sys.argv[1])
together = train_many(model, profile, exercise.compile, [11, 12, 13, 14])
found = {}
for seed in (12, 14):  # places 1 and 3 of 4: on XLA:CPU those get other kernels than a seed alone
    alone, beside = train_and_evaluate(model, profile, exercise.compile, seed), together[seed]
    found[seed] = {
        "accuracy": [alone.test_accuracy, beside.test_accuracy],
        "train_accuracy": [alone.train_accuracy, beside.train_accuracy],
        "loss": [alone.final_loss, beside.final_loss],
        "weights": max(float(np.max(np.abs(a - b))) for a, b in zip(alone.model.get_weights(), beside.model.get_weights())),
        "history": sorted(alone.history) == sorted(beside.history),
        "methods": [alone.method, beside.method],
    }
found["distinct"] = len({together[s].test_accuracy for s in together}) > 1

def prepare(fresh):  # deterministic, as the grader's restore of the pretrained base is
    first = next(layer for layer in fresh.layers if layer.weights)
    first.set_weights([np.full_like(w, 0.01) for w in first.get_weights()])

warm = Warmup(1, lambda fresh: next(layer for layer in fresh.layers if layer.weights))  # frozen, then trained
phased = profile.model_copy(update={"epochs": 2})
pair = train_many(model, phased, exercise.compile, [5, 6], prepare=prepare, warmup=warm)
for seed in (5, 6):
    alone, beside = train_and_evaluate(model, phased, exercise.compile, seed, prepare=prepare, warmup=warm), pair[seed]
    found[f"phased {seed}"] = {
        "accuracy": [alone.test_accuracy, beside.test_accuracy],
        "train_accuracy": [alone.train_accuracy, beside.train_accuracy],
        "weights": max(float(np.max(np.abs(a - b))) for a, b in zip(alone.model.get_weights(), beside.model.get_weights())),
        "runs": [[alone.epochs_run, alone.warmup_epochs], [beside.epochs_run, beside.warmup_epochs]],
        "history": [sorted(alone.history), sorted(beside.history)],
    }
found["refused"] = [unbatchable(FitOptions(early_stopping={"monitor": "loss", "patience": 2})),
                    unbatchable(FitOptions(validation_split=0.2)), unbatchable(FitOptions()), unbatchable()]
print(json.dumps(found))
"""


@pytest.fixture(scope="module")
def reference_mlp(course, tmp_path_factory):
    from deepgrade.calibrate import build_models

    folder = tmp_path_factory.mktemp("seeds-models")
    (model,) = build_models(course, "mlp", folder, only=["reference solution"])
    return folder, model.submission.models["build_model"]


def jax_env():
    return {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.mark.slow
def test_a_seed_trains_the_same_alone_and_beside_others(reference_mlp):
    """The same fresh copy, data, shuffle and dropout draws: after an epoch, the weights of a seed trained beside
    three others are those of the seed trained alone to float rounding (XLA batches the arithmetic differently;
    over later epochs Adam carries such differences as any change of thread count or machine does)."""
    _, model = reference_mlp
    done = subprocess.run([sys.executable, "-c", COMPANY, str(model)], cwd=ROOT, env=jax_env(), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    close = lambda pair: abs(pair[0] - pair[1]) <= 0.001  # noqa: E731 - a prediction or two, not a training
    for seed in ("12", "14"):
        got = found[seed]
        assert close(got["accuracy"]) and close(got["train_accuracy"]), got
        assert abs(got["loss"][0] - got["loss"][1]) < 1e-5 and got["weights"] < 1e-5, got
        assert got["history"] and got["methods"] == ["fastfit", "fastfit-seeds"], got
    for seed in ("5", "6"):  # a restored layer, a warm-up with it frozen, then the rest: two phases, stacked
        got = found[f"phased {seed}"]
        assert close(got["accuracy"]) and close(got["train_accuracy"]) and got["weights"] < 1e-4, got
        assert got["runs"] == [[2, 1], [2, 1]] and got["history"][0] == got["history"][1], got
    assert found["distinct"]  # four seeds, four trainings (not one copied)
    early, split, default, none = found["refused"]
    assert "early stopping" in early and "validation split" in split and default == none == ""


@pytest.mark.slow
def test_calibrate_trains_seeds_together_and_grades_each(reference_mlp, tmp_path):
    """`deepgrade calibrate --batch`: every seed graded (its own line, its own metrics), the section says JAX."""
    folder, _ = reference_mlp
    done = subprocess.run([sys.executable, "-m", "deepgrade", "calibrate", "mlp", "--seeds", "3", "--first-seed", "5",
                           "--batch", "3", "--profile", "smoke", "--no-write", "--only", "reference solution",
                           "--models", str(folder)], cwd=ROOT, env=jax_env(), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "one seed at a time" not in done.stderr  # trained together, not alone
    lines = [line for line in done.stderr.splitlines() if line.startswith("reference solution, seed ")]
    assert [line.split(",")[1].split()[1] for line in lines] == ["5", "6", "7"], done.stderr[-2000:]
    accuracies = {line.split("test_accuracy ")[1].split(",")[0] for line in lines}
    assert len(accuracies) == 3 and all(0.79 < float(a) < 0.86 for a in accuracies), lines
    assert "## mlp, smoke profile, jax-cpu" in done.stdout and "seeds 5, 6, 7;" in done.stdout, done.stdout


def test_a_batch_in_a_process_on_tensorflow_is_refused_before_anything_trains(tmp_path, capsys):
    import keras

    from deepgrade.cli import main

    assert keras.backend.backend() == "tensorflow"  # this process already runs Keras on TensorFlow
    assert main(["calibrate", "mlp", "--seeds", "2", "--batch", "2", "--no-write", "--only", "reference solution",
                 "--models", str(tmp_path)]) == 2
    said = " ".join(capsys.readouterr().err.split())
    assert "expected Keras on jax in this process. Received: Keras already on tensorflow." in said, said
    assert not any(tmp_path.iterdir())  # nothing was built
