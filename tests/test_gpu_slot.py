"""The GPU slot's one command, rehearsed here (benchmarks/gpu_slot.sh --rehearse): what travels fits, the carried
wheels install and are the only source of what they carry, TensorFlow is not there, and the whole job (every
exercise's reference and baselines, the benchmark, the records and sections in $OUT) runs through."""

import json
import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = ("mlp", "cnn", "rnn", "regularization", "transfer")


@pytest.mark.slow
def test_the_gpu_slot_rehearses_here(tmp_path):
    ours = (ROOT / "docs" / "calibration.md").read_bytes()
    done = subprocess.run(["bash", "benchmarks/gpu_slot.sh", "--rehearse"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "REHEARSAL_DIR": str(tmp_path)}, timeout=900)
    said = done.stdout + done.stderr
    assert done.returncode == 0, said[-6000:]
    travels = re.search(r"what travels is (\d+) MiB of the device tool's 64 MiB", said)
    assert travels and int(travels[1]) <= 64, said[-3000:]
    copy = next(tmp_path.glob("gpu-slot-rehearsal.*"))
    out = copy / "out"
    log = (out / "slot.log").read_text()
    for exercise in EXERCISES:  # references first, then baselines: every one trained at least once
        assert re.search(rf"\] {exercise} references: [1-9]\d* trainings", log), log[-3000:]
        assert re.search(rf"\] {exercise} baselines: [1-9]\d* trainings", log), log[-3000:]
    assert log.index("transfer references") < log.index("mlp baselines")
    assert "Keras 3.15.1 on jax" in log and "one seed at a time" not in log  # transfer's base and warm-up batch too
    # the carried packages came from the wheels, in the copy's site folder, and TensorFlow never loaded
    probe = subprocess.run([str(copy / ".venv" / "bin" / "python"), "-c", (
        "import json, keras, pydantic, deepgrade, sys\n"
        "try:\n    import tensorflow\n    tf = 'importable'\nexcept ImportError as e:\n    tf = str(e)\n"
        "print(json.dumps([keras.__file__, pydantic.__file__, deepgrade.__file__, tf]))")],
        cwd=copy, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": f"{copy / '.site'}:{copy / '.rehearsal'}", "SITE": str(copy / ".site"),
             "KERAS_BACKEND": "jax"})
    assert probe.returncode == 0, probe.stderr[-3000:]
    files = json.loads(probe.stdout.strip().splitlines()[-1])
    assert all(f.startswith(str(copy / ".site")) for f in files[:3]), files
    assert "not installed on the GPU machine" in files[3]
    assert "fastfit" in (out / "gpu.txt").read_text()
    with tarfile.open(out / "slot.tar.gz") as tar:
        names = set(tar.getnames())
        section = tar.extractfile("docs/calibration.md").read().decode()
    assert {f"docs/calibration/{e}-full-jax-cpu.jsonl" for e in EXERCISES} <= names, names
    for exercise in EXERCISES:
        assert f"<!-- calibrate {exercise}:full:jax-cpu -->" in section
    assert (ROOT / "docs" / "calibration.md").read_bytes() == ours  # the rehearsal wrote into its copy only
