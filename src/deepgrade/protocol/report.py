"""A grade: one result per check, the score, and the environment it was computed in.

The only thing the trusted grader hands on (as JSON) to the processes that write tables, gradebooks and
feedback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, computed_field


class CheckResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    passed: bool
    points: float
    max_points: float
    message: str


class Report(BaseModel):
    model_config = ConfigDict(frozen=True)

    exercise: str
    profile: str
    checks: list[CheckResult]
    environment: dict[str, Any] = {}

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

    def check(self, name: str) -> CheckResult | None:
        return next((c for c in self.checks if c.name == name), None)

    def to_dict(self) -> dict:
        """``{"exercise", "profile", "score", "max_score", "checks", "environment"}`` (the `--json` shape)."""
        data = self.model_dump(mode="json")
        return {key: data[key] for key in ("exercise", "profile", "score", "max_score", "checks", "environment")}

    def write(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, data: dict) -> "Report":
        return cls.model_validate({k: v for k, v in data.items() if k not in ("score", "max_score")})

    @classmethod
    def read(cls, path: Path) -> "Report":
        return cls.from_dict(json.loads(Path(path).read_text()))
