"""Shared fixtures: the real course, sample submissions, and course copies with edited settings."""

from __future__ import annotations

import shutil
from pathlib import Path

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
        for part in ("autograders", "solutions", "exercises"):
            shutil.copytree(REPO / part, root / part)
        data = yaml.safe_load((REPO / "course.yml").read_text())
        edit(data)
        (root / "course.yml").write_text(yaml.safe_dump(data, sort_keys=False))
        return root

    return make
