"""The class summary of a batch: each check's pass rate, the score distribution, failures grouped by message.

Printed as tables (rich), written as a CSV (one row per student: score and points per check, and the first
failure's message) and as a PNG (matplotlib: pass rate per check beside the score histogram).
"""

from __future__ import annotations

import csv
import re
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..protocol import Report

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


@dataclass(frozen=True)
class Row:
    student: str
    report: Report
    reused: bool = False     # a finished grade found in the store, not graded again
    recorded: str | None = None  # None: in the gradebook; else why the gradebook write failed


def message_group(message: str) -> str:
    """A failure message with its numbers replaced by #, so that failures of one kind group together."""
    first = message.strip().splitlines()[0] if message.strip() else "(no message)"
    return _NUMBER.sub("#", first)[:160]


@dataclass(frozen=True)
class Summary:
    assignment: str
    checks: list[str]
    rows: list[Row]

    def pass_rates(self) -> dict[str, float]:
        rates = {}
        for name in self.checks:
            results = [r.report.check(name) for r in self.rows]
            rates[name] = sum(1 for c in results if c and c.passed) / len(self.rows) if self.rows else 0.0
        return rates

    def scores(self) -> list[float]:
        return [r.report.score for r in self.rows]

    def max_score(self) -> float:
        return max((r.report.max_score for r in self.rows), default=0.0)

    def failures(self) -> list[tuple[str, list[str], list[str]]]:
        """(message pattern, the checks it failed, the students), most frequent first: one notebook that
        raised fails every check with one message, and counts once per student."""
        groups: dict[str, tuple[list[str], list[str]]] = {}
        for row in self.rows:
            for check in row.report.checks:
                if not check.passed:
                    checks, students = groups.setdefault(message_group(check.message), ([], []))
                    if check.name not in checks:
                        checks.append(check.name)
                    if row.student not in students:
                        students.append(row.student)
        return sorted(((m, c, s) for m, (c, s) in groups.items()), key=lambda g: (-len(g[2]), g[0]))

    def write_csv(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["student", "score", "max_score", *self.checks, "first_failure", "reused", "gradebook"])
            for row in self.rows:
                points = [(c.points if (c := row.report.check(n)) else "") for n in self.checks]
                first = next((f"{c.name}: {c.message}" for c in row.report.checks if not c.passed), "")
                out.writerow([row.student, row.report.score, row.report.max_score, *points, first,
                              int(row.reused), row.recorded or "recorded"])
        return path

    def write_png(self, path: Path) -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        path.parent.mkdir(parents=True, exist_ok=True)
        rates = self.pass_rates()
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
        names = list(rates)
        bars = left.barh(names[::-1], [100 * rates[n] for n in names[::-1]], color="#4c9f70")
        left.bar_label(bars, fmt="%.0f%%", padding=3)
        left.set_xlim(0, 110)
        left.set_xlabel("students passing (%)")
        left.set_title(f"{self.assignment}: pass rate per check ({len(self.rows)} students)")
        top = self.max_score()
        scores = self.scores()
        bins = [x - 0.5 for x in range(int(top) + 2)] if top and float(top).is_integer() else 10
        right.hist(scores, bins=bins, color="#3a6ea5", edgecolor="white")
        right.set_xlabel(f"score (of {top:g})")
        right.set_ylabel("students")
        right.set_title("score distribution")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path

    def render(self, console) -> None:
        from rich.table import Table

        table = Table(title=f"{self.assignment}: the class", title_justify="left")
        table.add_column("student")
        for name in self.checks:
            table.add_column(name, justify="right")
        table.add_column("total", justify="right")
        table.add_column("", justify="left")
        for row in self.rows:
            cells = []
            for name in self.checks:
                c = row.report.check(name)
                cells.append("-" if c is None else f"[{'green' if c.passed else 'red'}]{c.points:g}[/]")
            note = "reused" if row.reused else ""
            if row.recorded:
                note = f"[red]not in the gradebook[/red] {note}".strip()
            table.add_row(row.student, *cells, f"{row.report.score:g} / {row.report.max_score:g}", note)
        console.print(table)
        rates = self.pass_rates()
        scores = sorted(self.scores())
        if scores:
            console.print("pass rate: " + ", ".join(f"{n} {100 * r:.0f}%" for n, r in rates.items())
                          + f"   scores: median {statistics.median(scores):g}, min {scores[0]:g}, max {scores[-1]:g} "
                            f"of {self.max_score():g}"
                          + f"   distribution: {dict(sorted(Counter(scores).items()))}")
        failures = self.failures()
        if failures:
            groups = Table(title="failures, grouped by message", title_justify="left")
            groups.add_column("n", justify="right")
            groups.add_column("message (numbers as #)")
            groups.add_column("checks")
            groups.add_column("students")
            for message, checks, students in failures:
                groups.add_row(str(len(students)), message, ", ".join(checks),
                               ", ".join(students[:6]) + (" ..." if len(students) > 6 else ""))
            console.print(groups)
