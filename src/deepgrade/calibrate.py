"""``deepgrade calibrate``: train the reference and the naive baselines under N seeds, propose thresholds.

Every run goes through the same trusted grader as a student's submission
(``grade_notebook()``, in this process), so the numbers are the ones a grade is made of. The result is
printed and written to docs/calibration.md, in a section per exercise and
profile that a later run replaces.
"""

from __future__ import annotations

import math
import re
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from .course import LoadedCourse, write_submission
from .errors import ConfigError
from .grader import grade_notebook

# metric in the grade's environment -> the check whose threshold it decides
METRIC_CHECK = {"test_accuracy": "accuracy", "gap": "gap", "gain": "gain", "finetune_accuracy": "fine_tuning"}
LOWER_IS_BETTER = {"gap"}  # a maximum, not a minimum


@dataclass(frozen=True)
class Runs:
    name: str
    values: dict[str, list[float]]  # metric -> one value per seed
    fails: tuple[str, ...] = ()

    def stats(self, metric: str) -> tuple[float, float, float, float]:
        """min, mean, max and standard deviation over the seeds."""
        v = self.values[metric]
        return min(v), statistics.fmean(v), max(v), _spread(v)


def _measure(course: LoadedCourse, exercise: str, notebook: Path, profile: str, seeds: list[int],
             progress: Callable[[str], None], name: str) -> tuple[dict, dict]:
    values: dict[str, list[float]] = {}
    environment: dict = {}
    for n, seed in enumerate(seeds, start=1):
        checks = [name for name in METRIC_CHECK.values() if name in course.exercise(exercise).checks]
        report = grade_notebook(course, exercise, notebook, profile=profile, seed=seed, only=checks)
        metrics = report.environment.get("metrics")
        if not metrics:
            messages = "; ".join(c.message for c in report.checks)
            raise ConfigError(f"{notebook.name} produced no metrics under seed {seed}: {messages}")
        for key, value in metrics.items():
            values.setdefault(key, []).append(value)
        environment = report.environment
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        progress(f"{name}, seed {seed} ({n}/{len(seeds)}, {report.environment.get('grade_seconds', '?')} s): {shown}")
    return values, environment


MARGIN = 0.015  # at least this far below the reference's worst seed
SPREAD = 4.0    # and at least this many standard deviations below the reference's mean


def _round_down(x: float) -> float:
    return math.floor(x * 1000 + 1e-9) / 1000


def _spread(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def propose(reference: Runs, baselines: list[Runs], metric: str = "test_accuracy") -> tuple[float | None, str]:
    """A threshold for ``metric`` that the reference passes on any seed and the baselines meant to fail do not.

    Grades draw a fresh seed, so the calibration seeds are a sample: for a minimum (accuracy, gain,
    fine_tuning) the threshold is the lower of MARGIN below the reference's worst seed and SPREAD standard
    deviations below its mean, rounded down to 0.001 (a correct solution must not fail by chance). A baseline
    that must fail has to stay below it on its best seed, or the two cannot be separated under this budget
    (its spread is not used: a collapsing baseline is bimodal, at chance on some seeds). For a maximum (gap)
    the same, mirrored and rounded up.
    """
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    worse, better = ("above", "below") if sign < 0 else ("below", "above")
    ref = [sign * v for v in reference.values[metric]]
    worst, mean, sd = min(ref), statistics.fmean(ref), _spread(ref)
    threshold = _round_down(min(worst - MARGIN, mean - SPREAD * sd))
    spread = (f"{(mean - threshold) / sd:.1f} standard deviations {worse} its mean" if sd else
              "no spread measured (one seed, or all equal): calibrate with more seeds")
    why = f"{worst - threshold:.4f} {worse} the reference's worst seed, {spread}"
    must_fail = [b for b in baselines if METRIC_CHECK[metric] in b.fails and metric in b.values]
    if must_fail:
        reach = max(max(sign * v for v in b.values[metric]) for b in must_fail)
        if threshold <= reach:
            return None, (f"cannot separate: the reference needs a threshold at or {worse} {sign * threshold:.3f} to "
                          f"pass on any seed, and a baseline that must fail reaches {sign * reach:.4f}; raise the "
                          "profile's budget")
        why += f", {threshold - reach:.4f} {better} the best baseline"
    else:
        why += "; no baseline to fail"
    if metric == "gain" and threshold <= 0:
        return None, f"the reference's gain would need a threshold of {threshold:+.3f}: the pretrained base does not clearly help"
    return sign * threshold + 0.0, why


def calibrate(course: LoadedCourse, exercise: str, seeds: int, profile: str,
              progress: Callable[[str], None] = lambda line: None) -> dict:
    """Train the reference and every baseline under seeds 0..seeds-1; ``progress`` hears of each run."""
    ex = course.exercise(exercise)
    course.profile(exercise, profile)
    seed_list = list(range(seeds))
    runs = []
    with tempfile.TemporaryDirectory(prefix="deepgrade-calibrate-") as tmp:
        values, environment = _measure(course, exercise, course.source_notebook(exercise), profile, seed_list,
                                       progress, "reference solution")
        runs.append(Runs("reference solution", values))
        for name, spec in ex.baselines.items():
            nb = write_submission(course.release_notebook(exercise), course.root / spec.answer, Path(tmp) / f"{name}.ipynb")
            values, _ = _measure(course, exercise, nb, profile, seed_list, progress, f"baseline: {name}")
            runs.append(Runs(f"baseline: {name}", values, tuple(spec.fails)))
    thresholds = {}
    for metric, check in METRIC_CHECK.items():
        if check in ex.checks and metric in runs[0].values:
            thresholds[check] = propose(runs[0], runs[1:], metric)
    return {"exercise": exercise, "profile": profile, "seeds": seed_list, "runs": runs, "thresholds": thresholds,
            "current": course.profile(exercise, profile).thresholds.model_dump(), "environment": environment}


def markdown(result: dict) -> str:
    env = result["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items())
    lines = [
        f"## {result['exercise']}, {result['profile']} profile (`deepgrade calibrate`)", "",
        f"Measured {date.today().isoformat()} on {env.get('device', '?')} ({env.get('platform', '?')}, "
        f"{env.get('cpu_count', '?')} cores), backend {env.get('backend', '?')}, {versions}; "
        f"seeds {', '.join(map(str, result['seeds']))}; {env.get('train_size', '?'):,} training images, "
        f"{env.get('epochs', '?')} epochs." if isinstance(env.get("train_size"), int) else
        f"Measured on {env.get('device', '?')}; seeds {result['seeds']}.", "",
        "| model | metric | min | mean | max | sd |", "|---|---|---|---|---|---|",
    ]
    for run in result["runs"]:
        for metric in run.values:
            lo, mean, hi, sd = run.stats(metric)
            lines.append(f"| {run.name} | {metric} | {lo:.4f} | {mean:.4f} | {hi:.4f} | {sd:.4f} |")
    lines.append("")
    for check, (threshold, why) in result["thresholds"].items():
        current = result["current"].get(check)
        shown = f"**{threshold:.3f}**" if threshold is not None else "**none**"
        lines.append(f"Proposed `{check}` threshold: {shown} ({why}); course.yml has {current}.")
    return "\n".join(lines) + "\n"


def write_section(path: Path, result: dict) -> None:
    """Replace (or append) this exercise and profile's section of docs/calibration.md."""
    key = f"{result['exercise']}:{result['profile']}"
    begin, end = f"<!-- calibrate {key} -->", f"<!-- /calibrate {key} -->"
    block = f"{begin}\n{markdown(result)}{end}\n"
    text = path.read_text() if path.exists() else "# Calibration\n\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end) + r"\n?", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
