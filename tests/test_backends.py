"""The trusted grader on JAX: the same grades as on TensorFlow, for the reference, the stub and every baseline.

Live: the notebook runs once, in the student's jail on TensorFlow (``graded`` builds each answer's models once);
the same model files are then graded by the grader on TensorFlow (in this process) and on JAX (a grader worker in
its own jail, ``KERAS_BACKEND=jax`` there only), under the same seed. Every exercise's stub and mlp's reference
(its JAX training takes seconds here) are graded live; a model with ``RECORDED`` seeds or more in the committed
JAX records (docs/calibration/EXERCISE-smoke-jax-cpu.jsonl, written by ``deepgrade calibrate EXERCISE --backend
jax``; test_calibrate keeps each section equal to them) is judged on every one of those trainings instead of one
live training: cnn's takes 70 s here, rnn's, transfer's and regularization's about 20 s. The JAX grader's whole
path on those exercises also runs in test_gpu_slot's rehearsal. Torch is exercised on a GPU machine
(its CUDA wheel does not fit here): see docs/calibration.md.
"""

import os
import re
from pathlib import Path

import pytest

from deepgrade.calibrate import ANSWER, BASELINE
from deepgrade.errors import ConfigError
from deepgrade.grader.backend import BACKENDS, ENV, grader_backend

ROOT = Path(__file__).resolve().parents[1]
SUBMISSIONS = ROOT / "tests" / "submissions"
EXERCISES = ["mlp", "cnn", "rnn", "regularization", "transfer"]
METRICS = ("test_accuracy", "gap", "gain", "finetune_accuracy")
SPREAD = 3.0  # a JAX grade's metric lies within the calibrated min..max, widened by this many standard deviations
RECORDED = 10  # seeds of a model in the JAX records that stand in for its one live grade
LIVE = ("mlp",)  # exercises whose reference is graded live on JAX whatever the records hold (seconds, here)


def answers(course, exercise: str) -> dict[str, str]:
    """answer (for ``graded``) -> the model calibration names it after, for the models graded live: the stub,
    the reference of a LIVE exercise, and each model the JAX records do not show on RECORDED seeds or more
    (:func:`test_the_jax_records_grade_as_tensorflow_does` judges those on their records)."""
    shown = on_jax(exercise)
    found = {"solution": "reference solution", "stub": ""}
    if exercise not in LIVE and shown.get("reference solution", 0) >= RECORDED:
        del found["solution"]
    for name, spec in course.exercise(exercise).baselines.items():
        if shown.get(BASELINE + name, 0) >= RECORDED:
            continue
        relative = os.path.relpath(course.root / spec.answer, SUBMISSIONS / exercise)
        found[relative.removesuffix(".py")] = BASELINE + name
    return found


def jax_records(exercise: str) -> Path:
    return ROOT / "docs" / "calibration" / f"{exercise}-smoke-jax-cpu.jsonl"


def tensorflow_records(exercise: str) -> Path:
    return ROOT / "docs" / "calibration" / f"{exercise}-smoke.jsonl"


def on_jax(exercise: str) -> dict[str, int]:
    """model -> seeds trained on JAX (CPU) in the committed smoke records of ``exercise``."""
    from deepgrade.calibrate import read_records

    if not jax_records(exercise).is_file():
        return {}
    counts: dict[str, int] = {}
    for model, _ in read_records(jax_records(exercise))[1]:
        counts[model] = counts.get(model, 0) + 1
    return counts


def on_tensorflow(course, exercise: str) -> dict:
    """The TensorFlow section's result (docs/calibration/EXERCISE-smoke.jsonl) at course.yml's thresholds."""
    from deepgrade.calibrate import from_records

    return from_records(course, exercise, "smoke", tensorflow_records(exercise))


def test_the_jax_records_grade_as_tensorflow_does(course):
    """Each model the live test leaves to the JAX records grades there as on TensorFlow, on every seed: the same
    checks that do not train failed (what the model is), each training's metrics within the TensorFlow section's
    spread (as the live test asks of its one training), each baseline on the failing side of every check it must
    fail, and the reference's one-training failures no more frequent than TensorFlow's 95% bound makes likely (at
    most the 99th percentile of that binomial)."""
    from math import comb

    from deepgrade.calibrate import from_records, read_records

    judged = []
    for exercise in EXERCISES:
        shown = on_jax(exercise)
        left = {model for model, n in shown.items() if n >= RECORDED and not model.startswith(ANSWER)}
        if not left:
            continue
        jax, tf = from_records(course, exercise, "smoke", jax_records(exercise)), on_tensorflow(course, exercise)
        spreads = {run.name: run for run in tf["runs"]}
        # the checks that do not train: what each model fails on what it is, the same on every seed of both
        structure = {backend: {(m, s): sorted(r.get("untrained_failures", [])) for (m, s), r in read_records(path)[1].items()
                               if m in left}
                     for backend, path in (("jax", jax_records(exercise)),
                                           ("tensorflow", tensorflow_records(exercise)))}
        for model in left:
            seen = {backend: {tuple(f) for (m, _), f in found.items() if m == model} for backend, found in structure.items()}
            assert len(seen["tensorflow"]) == 1 and seen["jax"] == seen["tensorflow"], (exercise, model, seen)
        for run in jax["runs"]:
            if run.name not in left:
                continue
            judged.append((exercise, run.name))
            for metric, values in run.values.items():
                if metric not in METRICS or metric not in spreads[run.name].values:
                    continue
                low, _, high, sd = spreads[run.name].stats(metric)
                outside = [(seed, v) for seed, v in zip(run.seeds, values, strict=True)
                           if not low - SPREAD * sd <= v <= high + SPREAD * sd]
                assert not outside, (f"{exercise} {run.name}: {metric} on JAX outside TensorFlow's {low:.4f}..{high:.4f}"
                                     f" (sd {sd:.4f}) widened by {SPREAD} sd, at (seed, value) {outside}")
        for (model, check), rate in jax["rates"]["baselines"].items():
            if model in left:
                assert rate.k == 0 and rate.n >= RECORDED, (exercise, model, check, rate)
        if "reference solution" in left:
            ref, bound = jax["rates"]["reference"], tf["rates"]["reference"]
            p = bound.upper ** 0.5  # one training's failure rate (the rule's rate is its square)
            allowed = next(k for k in range(ref.n + 1) if sum(comb(ref.n, i) * p ** i * (1 - p) ** (ref.n - i)
                                                               for i in range(k + 1)) >= 0.99)
            assert ref.k <= allowed, (f"{exercise}: the reference failed a training check on {ref.k} of {ref.n} JAX "
                                      f"trainings; TensorFlow's {bound.k}/{bound.n} makes at most {allowed} likely")
    # mlp's logistic and regularization's overfit (200 seeds each), and the JAX calibrations of cnn, rnn, transfer
    assert {("mlp", "baseline: logistic"), ("regularization", "baseline: overfit")} <= set(judged)
    assert {exercise for exercise, model in judged if model == "reference solution"} >= {"cnn", "rnn", "regularization",
                                                                                       "transfer"}


def calibrated(exercise: str, model: str) -> dict[str, tuple[float, float, float]]:
    """metric -> (min, max, sd) of ``model`` in docs/calibration.md's smoke section for ``exercise`` (TensorFlow)."""
    text = (ROOT / "docs" / "calibration.md").read_text()
    section = re.search(rf"<!-- calibrate {exercise}:smoke -->(.*?)<!-- /calibrate {exercise}:smoke -->", text, re.S)
    assert section, f"docs/calibration.md has no smoke calibration of {exercise}"
    table = re.search(r"^\| model \| metric \|.*?(?=^$)", section[1], re.S | re.M)  # the first table: the metrics
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in table[0].splitlines()]
    head = rows[0]
    spread = {}
    for row in rows[2:]:
        cells = dict(zip(head, row, strict=False))
        if cells.get("model") == model:
            spread[cells["metric"]] = (float(cells["min"]), float(cells["max"]), float(cells["sd"]))
    return spread


def outcome(report) -> dict[str, bool]:
    return {c.name: c.passed for c in report.checks}


def first_training(report) -> dict[str, bool]:
    """What each check gave on the grade's first training: a check the retry rule trained again had failed it."""
    retried = set(report.environment.get("retry", {}).get("because", []))
    return {name: passed and name not in retried for name, passed in outcome(report).items()}


@pytest.mark.slow
@pytest.mark.parametrize("exercise", EXERCISES)
def test_the_grader_on_jax_agrees_with_tensorflow(exercise, graded, course):
    """One training per grade on JAX (as calibration measures it), against the first training on TensorFlow (the
    grades other tests share): the retry rule is the same code on every backend (test_retry)."""
    for answer, model in answers(course, exercise).items():
        on_tf, on_jax = graded(exercise, answer), graded(exercise, answer, backend="jax", retry=False)
        assert on_tf.environment["backend"] == "tensorflow" and on_jax.environment["backend"] == "jax"
        assert "jax" in on_jax.environment["versions"] and on_jax.environment["seed"] == on_tf.environment["seed"]
        said = {c.name: c.message for c in on_jax.checks}
        assert outcome(on_jax) == first_training(on_tf), (answer, said, {c.name: c.message for c in on_tf.checks})
        if answer == "solution":
            assert all(outcome(on_jax).values()), said
            assert (on_jax.environment["trained_by"], on_tf.environment["trained_by"]) == ("fastfit", "fit")
        if answer == "stub":
            assert not any(outcome(on_jax).values()) and "NotImplementedError" in " ".join(said.values())
            continue
        spread = calibrated(exercise, model)
        for metric in METRICS:
            value = on_jax.environment.get("metrics", {}).get(metric)
            if value is None or metric not in spread:
                continue
            low, high, sd = spread[metric]
            assert low - SPREAD * sd <= value <= high + SPREAD * sd, (
                f"{exercise} {model}: {metric} on JAX {value:.4f}, calibrated on TensorFlow {low:.4f}..{high:.4f} "
                f"(sd {sd:.4f}); on TensorFlow this seed gave {on_tf.environment['metrics'].get(metric)}")


def test_the_backend_is_chosen_and_checked(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    assert grader_backend() == "tensorflow"
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    assert grader_backend() == "torch"  # the notebook's backend, when nothing else is said
    monkeypatch.setenv(ENV, "jax")
    assert grader_backend() == "jax" and grader_backend("torch") == "torch" and set(BACKENDS) == {"tensorflow", "jax", "torch"}
    monkeypatch.setenv(ENV, "jaxx")
    with pytest.raises(ConfigError) as caught:
        grader_backend()
    assert "DEEPGRADE_BACKEND: expected a Keras backend, one of tensorflow, jax, torch. Received: 'jaxx'." in str(caught.value)
    assert "jax" in (caught.value.tip or "")


def test_the_grader_reads_the_base_without_tensorflow_and_checks_its_digest(tmp_path):
    """The numpy weights beside the SavedModel are the SavedModel's (the manifest's sha256), and a changed copy is
    refused: what the grader restores on JAX or torch is the base students get through tensorflow_hub."""
    import json
    import shutil

    import numpy as np

    from deepgrade.pretrained import MANIFEST, load_base, weights_digest
    from deepgrade.pretrained.load import WEIGHTS

    base = ROOT / "solutions" / "transfer" / "pretrained_base"
    manifest = json.loads((base / MANIFEST).read_text())
    neutral, saved = load_base(str(base), neutral=True), load_base(str(base))
    assert weights_digest(neutral) == weights_digest(saved) == manifest["weights_sha256"]
    assert not neutral.trainable and neutral.count_params() == manifest["parameters"]
    released = ROOT / "exercises" / "transfer" / "pretrained_base" / WEIGHTS
    assert released.read_bytes() == (base / WEIGHTS).read_bytes()  # nbgrader's release carries the same file
    copy = shutil.copytree(base, tmp_path / "base")
    with np.load(copy / WEIGHTS) as stored:
        arrays = {name: stored[name] for name in stored.files}
    first = sorted(arrays)[0]
    arrays[first] = arrays[first] + 0.01
    np.savez(copy / WEIGHTS, **arrays)
    with pytest.raises(ConfigError, match="its weights' sha256 is not the manifest's"):
        load_base(str(copy), neutral=True)
    (copy / WEIGHTS).unlink()
    with pytest.raises(ConfigError, match="expected the base's Keras config and numpy weights"):
        load_base(str(copy), neutral=True)


def test_no_tensorflow_in_the_graders_process_on_jax():
    """On JAX, the grader's whole path (course, data, the base, a grade of the reference's model file) runs with
    TensorFlow made unimportable, as on a GPU machine that has JAX and no TensorFlow."""
    import subprocess
    import sys

    script = """
import sys
class NoTensorFlow:
    def find_spec(self, name, path, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ImportError("TensorFlow is not installed here")
sys.meta_path.insert(0, NoTensorFlow())
from pathlib import Path
from deepgrade.course import load_course
from deepgrade.grader import grade
from deepgrade.protocol import Submission
course = load_course()
report = grade(course, "transfer", Submission.of_model("build_model", Path(sys.argv[1])), profile="smoke", seed=1,
               only=["base_used", "base_frozen", "head_new"])
print([c.passed for c in report.checks], report.environment["backend"], "tensorflow" in sys.modules)
"""
    model = _reference_transfer_model()
    done = subprocess.run([sys.executable, "-c", script, str(model)], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "KERAS_BACKEND": "jax"}, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[True, True, True] jax False"


def _reference_transfer_model() -> Path:
    """The reference's build_model(base) as a .keras file, built here (the transfer solution's head)."""
    import keras

    from deepgrade.pretrained import load_base

    base = load_base(str(ROOT / "solutions" / "transfer" / "pretrained_base"), neutral=True)
    model = keras.Sequential([keras.Input((28, 28, 1)), base, keras.layers.Dropout(0.3), keras.layers.Dense(5, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    path = Path(__import__("tempfile").mkdtemp()) / "model.keras"
    model.save(path)
    return path


def test_a_wrong_backend_on_the_command_line_is_said_before_anything_runs(capsys):
    from deepgrade.cli import main

    notebook = ROOT / "solutions" / "mlp" / "mlp.ipynb"
    assert main(["check", "mlp", str(notebook), "--backend", "jaxx"]) == 2
    said = capsys.readouterr().err
    assert "Invalid value for --backend: expected a Keras backend, one of tensorflow, jax, torch. Received: 'jaxx'." in said
    assert "Did you mean 'jax'?" in said
