"""The records a calibration section is computed from: every training of every run, kept as it ends."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from pathlib import Path

from ..course import LoadedCourse
from ..errors import ConfigError
from .rule import METRIC_CHECK, Runs, models_of, propose_by_rule, rates
from .section import _backend_key, _seeds

# docs/calibration/<exercise>-<profile>[-<backend>-<device>].jsonl: a line per calibration run ({"run": id,
# "date", "environment"}) and a line per training ({"run", "model", "seed", "metrics", "untrained_failures"});
# a later line for the same model and seed replaces an earlier one. Runs add to it (more seeds, another
# baseline) as long as they measure the same thing (MEASURED); `calibrate --render` recomputes the section.
RECORDS = Path("docs") / "calibration"
MEASURED = ("backend", "device", "device_name", "platform", "cpu_count", "threads", "versions", "train_size", "epochs")
SAME = ("backend", "device", "versions", "train_size", "epochs")  # what runs that add up must share


class Recorder:
    """Writes a calibration run's trainings to the section's records as they end: the first one decides the
    records file (by its backend and device) and is checked against the runs already there, so a run that would
    not add up stops after one training, kept aside; each later one is appended at once."""

    def __init__(self, root: Path, exercise: str, profile: str, *, fresh: bool = False):
        self.root, self.exercise, self.profile, self.fresh = Path(root), exercise, profile, fresh
        self.path: Path | None = None
        self.run = 0

    def keep(self, model: str, seed: int, result: dict, environment: dict) -> None:
        found = {(model, seed): result}
        if self.path is None:
            measured = {key: environment[key] for key in MEASURED if key in environment}
            self.path = records_path(self.root, self.exercise, self.profile, measured)
            self.run = add_records(self.path, measured, found, fresh=self.fresh)
            return
        with self.path.open("a") as out:
            out.write(json.dumps({"run": self.run, "model": model, "seed": seed, **result}) + "\n")


def section_files(root: Path, exercise: str, profile: str) -> list[Path]:
    """The records files of ``exercise`` and ``profile``, one per backend and device (not a refused run's)."""
    name = re.compile(rf"{re.escape(exercise)}-{re.escape(profile)}(-[a-z0-9]+-[a-z0-9]+)?")
    return sorted(p for p in (Path(root) / RECORDS).glob("*.jsonl") if name.fullmatch(p.stem))


def records_path(root: Path, exercise: str, profile: str, environment: dict) -> Path:
    key = _backend_key({"environment": environment}).replace(":", "-")
    return Path(root) / RECORDS / f"{exercise}-{profile}{key}.jsonl"


def read_records(path: Path) -> tuple[dict[int, dict], dict[tuple[str, int], dict]]:
    """The records of ``path``: (runs by id, trainings by (model, seed), the last line for each winning)."""
    runs: dict[int, dict] = {}
    trainings: dict[tuple[str, int], dict] = {}
    text = Path(path).read_text()
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if "model" in record:
                dict(record["metrics"])
                trainings[(record["model"], int(record["seed"]))] = record
            else:
                dict(record["environment"]), str(record["date"])
                runs[int(record["run"])] = record
        except (ValueError, KeyError, TypeError) as exc:
            if number == len(lines) and not text.endswith("\n"):
                break  # a line cut off by a run stopped while writing it: that training was never recorded
            raise ConfigError(f"{path}, line {number}: expected a calibration record (JSON with run, date and "
                              "environment for a run; run, model, seed and metrics for a training). Received: "
                              f"{line[:120]!r} ({type(exc).__name__}: {exc}). Mend or delete the line.") from None
    return runs, trainings


def add_records(path: Path, environment: dict, found: dict[tuple[str, int], dict], *, fresh: bool = False,
                when: str | None = None) -> int:
    """Append one run's trainings to ``path`` (a run of another environment is refused: its numbers would not
    add up; ``fresh`` starts the records over); the run's number."""
    path = Path(path)
    runs = {} if fresh or not path.is_file() else read_records(path)[0]
    for run in runs.values():
        differs = [k for k in SAME if run["environment"].get(k) != environment.get(k)]
        if differs:  # the trainings are kept aside, never lost (a file per refused run)
            stamp = datetime.now().strftime("%Y%m%dT%H%M%S%f")
            aside = path.with_name(f"{path.stem}.refused-{stamp}.jsonl")
            add_records(aside, environment, found, fresh=True, when=when)
            said = ", ".join(f"{k}={run['environment'].get(k)!r}" for k in differs)
            now = ", ".join(f"{k}={environment.get(k)!r}" for k in differs)
            raise ConfigError(f"{path}: run {run['run']} measured {said}; this run measures {now}. Expected the same "
                              "backend, device, versions and budget for trainings that add up. This run's trainings "
                              f"are kept in {aside}: to start the records over with them, move that file to "
                              f"{path.name}; or run again with --fresh.")
    number = max(runs, default=0) + 1
    lines = [{"run": number, "date": when or date.today().isoformat(), "environment": environment}]
    lines += [{"run": number, "model": model, "seed": seed, **result} for (model, seed), result in sorted(found.items())]
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "" if fresh or not path.is_file() else path.read_text()
    if not text or not text.endswith("\n"):  # new, or ending in a line cut off half-way (read_records): rewritten
        path.write_text(text.rsplit("\n", 1)[0] + "\n" if "\n" in text else "")
    with path.open("a") as out:  # appended: what is there stays whole if this run stops
        out.write("".join(json.dumps(line) + "\n" for line in lines))
    return number


def from_records(course: LoadedCourse, exercise: str, profile: str, path: Path) -> dict:
    """The calibration result of every training in ``path``, at course.yml's current thresholds: what
    docs/calibration.md's section shows (and `calibrate --render` rewrites)."""
    ex = course.exercise(exercise)
    runs_by_id, trainings = read_records(path)
    if not runs_by_id or not trainings:
        raise ConfigError(f"{path}: no trainings recorded. Run `deepgrade calibrate {exercise} --profile {profile}` first.")
    fails = {name: must_fail for name, (_, must_fail) in models_of(ex).items()}
    runs = []
    for name in [n for n in fails if any(model == n for model, _ in trainings)]:
        mine = sorted((seed, record) for (model, seed), record in trainings.items() if model == name)
        keys = list(dict.fromkeys(key for _, record in mine for key in record["metrics"]))
        for key in keys:
            missing = [seed for seed, record in mine if key not in record["metrics"]]
            if missing:
                raise ConfigError(f"{path}: {name} has {key} on some seeds, not on seeds {_seeds(missing)}. Expected "
                                  "the same metrics on every seed (a check added since?): train those seeds again "
                                  f"(--only, --first-seed) or start over with --fresh.")
        metrics = {key: [record["metrics"][key] for _, record in mine] for key in keys}
        untrained = set().union(*(record.get("untrained_failures", []) for _, record in mine))
        runs.append(Runs(name, metrics, fails[name], not untrained, tuple(sorted(set(fails[name]) & untrained)),
                         tuple(seed for seed, _ in mine)))
    failing = sorted(set().union(*(r.get("untrained_failures", []) for (m, _), r in trainings.items()
                                   if m == "reference solution")))
    if failing:
        raise ConfigError(f"{path}: the reference solution fails {', '.join(failing)} without training, so no "
                          "threshold can make its grade right. Expected a reference that passes every check that "
                          "does not train: fix the solution or the check, then calibrate again with --fresh.")
    if not runs or runs[0].name != "reference solution":
        raise ConfigError(f"{path}: no trainings of the reference solution. Run `deepgrade calibrate {exercise} --profile "
                          f"{profile} --only 'reference solution'` first.")
    used = sorted({int(record["run"]) for record in trainings.values()} & set(runs_by_id))  # runs with a winning line
    latest = runs_by_id[used[-1] if used else max(runs_by_id)]
    environment = {**latest["environment"], "date": ", ".join(sorted({runs_by_id[r]["date"] for r in used}))}
    machines = {_machine(runs_by_id[r]["environment"]) for r in used}
    if len(machines) > 1:
        environment["machines"] = sorted(machines)
    current = course.profile(exercise, profile).thresholds.model_dump()
    trained = [(metric, check) for metric, check in METRIC_CHECK.items() if check in ex.checks and metric in runs[0].values]
    thresholds = {check: propose_by_rule(runs[0], runs[1:], metric, len(trained)) for metric, check in trained}
    return {"exercise": exercise, "profile": profile, "seeds": list(runs[0].seeds), "runs": runs,
            "thresholds": thresholds, "current": current, "rates": rates(runs, current), "environment": environment}


def render(course: LoadedCourse, exercise: str, profile: str) -> list[dict]:
    """Every section of ``exercise`` and ``profile`` (one per backend and device), recomputed from its records
    at course.yml's current thresholds, training nothing."""
    course.profile(exercise, profile)
    paths = section_files(course.root, exercise, profile)
    if not paths:
        raise ConfigError(f"No calibration records for {exercise} ({profile} profile) in {course.root / RECORDS}. "
                          f"Run `deepgrade calibrate {exercise} --profile {profile}` first.")
    return [from_records(course, exercise, profile, path) for path in paths]


def _machine(environment: dict) -> str:
    threads = environment.get("threads")
    return (f"{environment.get('device_name') or environment.get('device', '?')} ({environment.get('cpu_count', '?')} "
            f"cores{'' if threads is None else f', {threads} thread(s) a grade'})")
