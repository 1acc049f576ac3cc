"""Find, read and validate course.yml; every mistake names the file, the key path and what was expected."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import ValidationError

from ..errors import ConfigError, did_you_mean, validation_problems
from .bundle import BUNDLE_DIR
from .schema import COURSE_FILE, Course, Exercise, Profile, Transfer

COURSE_ENV = "DEEPGRADE_COURSE"  # the course folder, where it cannot be found upwards from the working directory


class LoadedCourse:
    """A validated course.yml together with the folder it lives in."""

    def __init__(self, course: Course, root: Path):
        self.course = course
        self.root = root
        self.path = root / COURSE_FILE
        self.bundled = root == BUNDLE_DIR.resolve()  # the course packaged with deepgrade (course/bundle.py)

    @property
    def where(self) -> str:
        """Which course.yml, for messages: its path, and whether it is the copy packaged with deepgrade."""
        return f"the course packaged with deepgrade ({self.path})" if self.bundled else str(self.path)

    def exercise(self, name: str) -> Exercise:
        try:
            return self.course.exercises[name]
        except KeyError:
            known = sorted(self.course.exercises)
            other = (" This is the course packaged with deepgrade; to use another, work inside its folder or set "
                     "DEEPGRADE_COURSE to it." if self.bundled else "")
            raise ConfigError(
                f"Unknown exercise: expected one of {', '.join(known)}. Received: exercise={name!r}.",
                tip=(did_you_mean(name, known) or f"Exercises are declared under `exercises:` in {self.where}.") + other,
            ) from None

    def source_notebook(self, name: str) -> Path:
        """The nbgrader source (the reference solution); the packaged course has none."""
        if self.bundled:
            raise ConfigError(f"{self.where} holds the released notebooks only, no solutions: expected the course "
                              f"repository for the source of {name!r}.",
                              tip="Run this inside the course repository, or set DEEPGRADE_COURSE to it.")
        return self.root / self.exercise(name).notebook

    def release_notebook(self, name: str) -> Path:
        """The student stub generated from the source (solutions/X/nb -> exercises/X/nb)."""
        src = Path(self.exercise(name).notebook)
        return self.root / "exercises" / src.relative_to(src.parts[0])

    def autograder(self, name: str) -> Path:
        return self.root / self.exercise(name).autograder

    def base_handle(self, name: str) -> str:
        """The transfer exercise's base: a URL as written, a local folder made absolute."""
        transfer = self.exercise(name).transfer
        if transfer is None:
            raise ConfigError(f"{self.where}: exercises.{name}: expected a `transfer:` section with the base's handle.")
        handle = transfer.handle
        return handle if "://" in handle else str((self.root / handle).resolve())

    def profile(self, name: str, profile: str) -> Profile:
        profiles = self.exercise(name).profiles
        if profile not in profiles:
            raise ConfigError(
                f"{self.where}: exercises.{name}.profiles: expected a `{profile}` profile. "
                f"Received: profiles={sorted(profiles)}.",
                tip=f"Add exercises.{name}.profiles.{profile} with epochs, train_size and thresholds.",
            )
        return profiles[profile]


def find_course_root(start: Path | None = None) -> Path:
    """The folder holding course.yml: $DEEPGRADE_COURSE, else the first one up from ``start`` (default: the
    working directory), else the course packaged with deepgrade (:data:`~.bundle.BUNDLE_DIR`), so that a
    released notebook is checked anywhere deepgrade is installed."""
    env = os.environ.get(COURSE_ENV)
    if env:
        root = Path(env)
        root = root.parent if root.name == COURSE_FILE else root
        if not (root / COURSE_FILE).is_file():
            raise ConfigError(
                f"DEEPGRADE_COURSE points at a folder without {COURSE_FILE}. Received: DEEPGRADE_COURSE={env!r}.",
                tip="Set it to the course folder (the one holding course.yml) or unset it.",
            )
        return root.resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / COURSE_FILE).is_file():
            return folder
    if (BUNDLE_DIR / COURSE_FILE).is_file():
        return BUNDLE_DIR.resolve()
    raise ConfigError(
        f"No {COURSE_FILE} found in {here} or any folder above it, and this deepgrade has no packaged course "
        f"(expected {BUNDLE_DIR / COURSE_FILE}).",
        tip="Open the notebook inside the course folder (the one holding course.yml), or set DEEPGRADE_COURSE to "
            "that folder (in a notebook: %env DEEPGRADE_COURSE=/path/to/course); or reinstall deepgrade, which "
            "packages the course.",
    )


def load_course(path: Path | str | None = None) -> LoadedCourse:
    """Read and validate course.yml (a file, or a folder holding one)."""
    if path is None:
        root = find_course_root()
    else:
        path = Path(path)
        root = path.parent if path.suffix in (".yml", ".yaml") else path
    file = root / COURSE_FILE if not (path and Path(path).is_file()) else Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"Course file not found: expected {file}.", tip="Pass --course PATH to a course.yml.") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{file}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: expected a mapping of keys at the top. Received: {type(data).__name__}.")
    try:
        course = Course.model_validate(data)
    except ValidationError as exc:
        problems = validation_problems(exc, Course)
        raise ConfigError(f"{file}: {len(problems)} problem(s):\n" + "\n".join(f"  {p}" for p in problems)) from None
    loaded = LoadedCourse(course, root.resolve())
    _check_files(loaded)
    return loaded


def _check_files(loaded: LoadedCourse) -> None:
    for name, ex in loaded.course.exercises.items():
        files = {"notebook": ex.notebook, "autograder": ex.autograder,
                 **{f"baselines.{b}.answer": spec.answer for b, spec in ex.baselines.items()},
                 **{f"answers.{a}.answer": spec.answer for a, spec in ex.answers.items()}}
        for key, rel in files.items():
            if not (loaded.root / rel).is_file():
                raise ConfigError(
                    f"{loaded.where}: exercises.{name}.{key}: expected an existing file. Received: {rel!r} "
                    f"(looked in {loaded.root}).",
                    tip="Paths in course.yml are relative to the folder holding it.",
                )
        if ex.transfer is not None:
            _check_transfer(loaded, name, ex.transfer)
        for key, spec in [*(("baselines." + b, s) for b, s in ex.baselines.items()),
                          *(("answers." + a, s) for a, s in ex.answers.items())]:
            unknown = [c for c in spec.fails if c not in ex.checks]
            if unknown:
                raise ConfigError(f"{loaded.where}: exercises.{name}.{key}.fails: expected checks of "
                                  f"{name} ({', '.join(ex.checks)}). Received: {unknown}.")
        clash = sorted(set(ex.baselines) & set(ex.answers))
        if clash:
            raise ConfigError(f"{loaded.where}: exercises.{name}: expected each answer's name to differ from the "
                              f"baselines'. Received: {clash} in both baselines and answers.")


def _check_transfer(loaded: LoadedCourse, name: str, transfer: Transfer) -> None:
    where = f"{loaded.where}: exercises.{name}.transfer"
    groups = {"classes": transfer.classes}
    if transfer.pretrain:
        groups["pretrain.source_classes"] = transfer.pretrain.source_classes
    for key, labels in groups.items():
        if any(not 0 <= c <= 9 for c in labels) or len(set(labels)) != len(labels):
            raise ConfigError(f"{where}.{key}: expected distinct Fashion-MNIST labels 0-9. Received: {labels}.")
    if transfer.pretrain and set(transfer.classes) & set(transfer.pretrain.source_classes):
        raise ConfigError(f"{where}: expected the target classes and the pretraining source classes to be disjoint "
                          f"(the base must not have seen the target task). Received: both have "
                          f"{sorted(set(transfer.classes) & set(transfer.pretrain.source_classes))}.")
