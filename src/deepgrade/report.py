"""A grade: one result per check, the score, and the environment it was computed in."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    points: float
    max_points: float
    message: str


@dataclass(frozen=True)
class Report:
    exercise: str
    profile: str
    checks: list[CheckResult]
    environment: dict = field(default_factory=dict)

    @property
    def score(self) -> float:
        return sum(c.points for c in self.checks)

    @property
    def max_score(self) -> float:
        return sum(c.max_points for c in self.checks)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def to_dict(self) -> dict:
        return {
            "exercise": self.exercise,
            "profile": self.profile,
            "score": self.score,
            "max_score": self.max_score,
            "checks": [asdict(c) for c in self.checks],
            "environment": self.environment,
        }

    def write(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, data: dict) -> "Report":
        return cls(
            exercise=data["exercise"],
            profile=data["profile"],
            checks=[CheckResult(**c) for c in data["checks"]],
            environment=data.get("environment", {}),
        )

    @classmethod
    def read(cls, path: Path) -> "Report":
        return cls.from_dict(json.loads(Path(path).read_text()))


def render(report: Report, console=None) -> None:
    """The check table a student reads."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title=f"deepgrade check {report.exercise} ({report.profile} profile)", title_justify="left")
    table.add_column("check")
    table.add_column("points", justify="right")
    table.add_column("result")
    for c in report.checks:
        mark = "[green]PASS[/green]" if c.passed else "[red]FAIL[/red]"
        table.add_row(c.name, f"{c.points:g} / {c.max_points:g}", f"{mark} {c.message}")
    console.print(table)
    env = report.environment
    console.print(
        f"score {report.score:g} / {report.max_score:g}"
        + (f"  (seed {env['seed']}, {env.get('device', '?')}, keras {env.get('versions', {}).get('keras', '?')})"
           if "seed" in env else "")
    )
