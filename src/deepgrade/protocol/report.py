"""A grade: one result per check, the score, and the environment it was computed in.

The only thing the trusted grader hands on (as JSON) to the processes that write tables, gradebooks and
feedback. Besides the verdicts it carries what feedback is drawn from, as plain numbers and strings: the
architecture as a layer-by-layer table (expected beside received) and, where the grader trained the model,
that training run's curves and test-set confusion matrix. Every field is bounded: a report stays small.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

MAX_LAYERS = 256      # rows of an architecture table
MAX_EPOCHS = 1000     # points of a training curve
MAX_CLASSES = 100     # rows of a confusion matrix
Text = Annotated[str, Field(max_length=400)]


class LayerRow(BaseModel):
    """One row of an architecture table: the expected layer beside the student's, as ``summary()`` names it."""

    model_config = ConfigDict(frozen=True)

    position: int
    expected: Text | None = None       # "Dense(units=256, activation='relu')"; None: a layer not expected
    received: Text | None = None       # "Dense 'dense_1' (units=128, activation='relu')"; None: missing
    expected_params: int | None = None
    received_params: int | None = None
    differs: bool = False              # the first row that differs is the one the messages name


class CheckResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    passed: bool
    points: float
    max_points: float
    message: str
    trains: bool = False  # the check trained the model: its result depends on the seed
    layers: Annotated[list[LayerRow], Field(max_length=MAX_LAYERS)] = []

    def first_difference(self) -> LayerRow | None:
        return next((row for row in self.layers if row.differs), None)


class Curves(BaseModel):
    """The grader's training run: per-epoch metrics and the test set's confusion matrix (rows: true class)."""

    model_config = ConfigDict(frozen=True)

    history: dict[Annotated[str, Field(max_length=64)], Annotated[list[float | None], Field(max_length=MAX_EPOCHS)]]
    confusion: Annotated[list[Annotated[list[int], Field(max_length=MAX_CLASSES)]], Field(max_length=MAX_CLASSES)]
    classes: Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=MAX_CLASSES)]
    validation: Text = ""  # what the validation curves were measured on

    @model_validator(mode="after")
    def _square(self) -> "Curves":
        n = len(self.classes)
        if len(self.history) > 16:
            raise ValueError(f"expected at most 16 training curves. Received: {len(self.history)}")
        if len(self.confusion) != n or any(len(row) != n for row in self.confusion):
            raise ValueError(f"expected a {n}x{n} confusion matrix (one row and column per class)")
        return self

    def per_class_accuracy(self) -> list[float | None]:
        return [row[i] / sum(row) if sum(row) else None for i, row in enumerate(self.confusion)]


class Report(BaseModel):
    model_config = ConfigDict(frozen=True)

    exercise: str
    profile: str
    checks: list[CheckResult]
    environment: dict[str, Any] = {}
    training: Curves | None = None

    @computed_field
    @property
    def score(self) -> float:
        return sum(c.points for c in self.checks)

    @computed_field
    @property
    def max_score(self) -> float:
        return sum(c.max_points for c in self.checks)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def notebook_notes(self) -> list[str]:
        """What the student's jail said of the notebook: the one line naming the cells it did not run and why,
        then any error that cost nothing (code that only may matter, a cell that is not Python)."""
        said = self.environment.get("notebook") or {}
        return [line for line in [said.get("not_run"), *said.get("notes", [])] if isinstance(line, str) and line]

    def check(self, name: str) -> CheckResult | None:
        return next((c for c in self.checks if c.name == name), None)

    def to_dict(self) -> dict:
        """``{"exercise", "profile", "score", "max_score", "checks", "environment"}``, each check
        ``{"name", "passed", "points", "max_points", "message"}``: the `--json` shape of the student contract."""
        data = self.model_dump(mode="json")
        data["checks"] = [{k: c[k] for k in ("name", "passed", "points", "max_points", "message")}
                          for c in data["checks"]]
        return {key: data[key] for key in ("exercise", "profile", "score", "max_score", "checks", "environment")}

    def dump(self) -> dict:
        """Everything, feedback included: what the grader sends, the store keeps and a notebook's metadata holds."""
        return self.model_dump(mode="json", exclude_none=True)

    def write(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.dump(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, data: dict) -> "Report":
        """From :meth:`dump` or :meth:`to_dict`."""
        return cls.model_validate({k: v for k, v in data.items() if k not in ("score", "max_score")})

    @classmethod
    def read(cls, path: Path) -> "Report":
        return cls.from_dict(json.loads(Path(path).read_text()))
