"""Shared fixtures: the real course, sample submissions, and course copies with edited settings."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from deepgrade.config import load_course
from deepgrade.submissions import write_submission

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
SUBMISSIONS = REPO / "tests" / "submissions"


@pytest.fixture(scope="session")
def course():
    return load_course(REPO)


@pytest.fixture(scope="session")
def make_submission(tmp_path_factory, course):
    """make_submission("mlp", "wrong_units") -> the stub filled with tests/submissions/mlp/wrong_units.py."""
    folder = tmp_path_factory.mktemp("submissions")

    def make(exercise: str, answer: str) -> Path:
        return write_submission(course.release_notebook(exercise), SUBMISSIONS / exercise / f"{answer}.py",
                                folder / exercise / f"{answer}.ipynb")

    return make


@pytest.fixture
def edited_course(tmp_path):
    """edited_course(lambda data: ...) -> a copy of the course whose course.yml was changed by the function."""

    def make(edit) -> Path:
        root = tmp_path / "course"
        for part in ("autograders", "solutions", "exercises", "tests/submissions"):
            shutil.copytree(REPO / part, root / part)
        data = yaml.safe_load((REPO / "course.yml").read_text())
        edit(data)
        (root / "course.yml").write_text(yaml.safe_dump(data, sort_keys=False))
        return root

    return make


def impulse_receptive_field(layers, size=64):
    """Measure the receptive field with Keras: the span of input pixels that change the centre output of an
    all-ones stack (with dilation, pixels inside the span may not contribute; the span is the field)."""
    import keras

    model = keras.Sequential([keras.Input((size, 1, 1))] + [
        keras.layers.Conv2D(1, (k, 1), strides=(s, 1), dilation_rate=(d, 1), kernel_initializer="ones",
                            use_bias=False) for k, s, d in layers])
    eye = np.eye(size, dtype="float32")[:, :, None, None]  # one impulse per input position
    out = keras.ops.convert_to_numpy(model(eye))[:, :, 0, 0]
    centre = out.shape[1] // 2
    hit = np.flatnonzero(out[:, centre])
    return int(hit[-1] - hit[0] + 1)


def by_name(report):
    """A report's check results by check name."""
    return {c.name: c for c in report.checks}


def graded_solution(course, exercise: str, checks: list[str]):
    """The exercise's reference solution graded in the smoke profile under seed 1: every check, in order, passes."""
    from deepgrade.grading import grade

    report = grade(course, exercise, course.source_notebook(exercise), profile="smoke", seed=1)
    assert [c.name for c in report.checks] == checks
    assert all(c.passed for c in report.checks), report.checks
    return report
