"""course.yml: the course, validated once on load into frozen objects.

Every mistake is reported as a :class:`ConfigError` naming the file, the key
path and what was expected, with a "did you mean" for misspelt keys.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ConfigError

COURSE_FILE = "course.yml"
PROFILES = ("smoke", "full")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sandbox(_Strict):
    """Limits for the subprocess that runs student code."""

    time_limit_s: Annotated[float, Field(gt=0, description="wall-clock limit for running the notebook and build_model()")] = 120
    memory_limit_mb: Annotated[int, Field(ge=512, description="address-space limit of the student process")] = 4096


class Compile(_Strict):
    """Compile settings used when the student's model comes back uncompiled."""

    optimizer: str = "adam"
    learning_rate: Annotated[float | None, Field(gt=0)] = None
    loss: str = "sparse_categorical_crossentropy"
    metrics: list[str] = ["accuracy"]


class Check(_Strict):
    points: Annotated[float, Field(gt=0)]
    description: str = ""


class Thresholds(_Strict):
    accuracy: Annotated[float | None, Field(ge=0, le=1, description="minimum accuracy on the official test set")] = None
    gap: Annotated[float | None, Field(ge=0, le=1, description="maximum train-minus-test accuracy gap")] = None
    gain: Annotated[float | None, Field(ge=-1, le=1, description=(
        "transfer: minimum test accuracy above the same head trained alone on the same images"))] = None
    fine_tuning: Annotated[float | None, Field(ge=0, le=1, description=(
        "transfer: minimum test accuracy of the fine-tuned model (it must not collapse)"))] = None


class Profile(_Strict):
    """A training budget and the thresholds that go with it."""

    train_size: Annotated[int | None, Field(gt=0, le=60000, description="training images used (None: all 60,000)")] = None
    epochs: Annotated[int, Field(gt=0)]
    batch_size: Annotated[int, Field(gt=0)] = 128
    thresholds: Thresholds = Thresholds()


class Baseline(_Strict):
    """A naive answer that calibration trains beside the reference; it must fail the checks it names."""

    answer: str  # a file of solution-cell code, as in tests/submissions/
    fails: list[str]


class Pretrain(_Strict):
    """How `deepgrade pretrain` builds the course's own feature extractor (reproducible from these)."""

    source_classes: Annotated[list[int], Field(min_length=2, description="Fashion-MNIST labels of the source task")]
    images_per_class: Annotated[int | None, Field(gt=0)] = None  # None: every training image of those classes
    epochs: Annotated[int, Field(gt=0)] = 3
    batch_size: Annotated[int, Field(gt=0)] = 128
    seed: int = 0


class Transfer(_Strict):
    """The transfer-learning task: a pretrained base from a handle, a small labelled target task."""

    handle: Annotated[str, Field(description=(
        "the feature extractor: a SavedModel folder relative to course.yml, or a TF Hub / Kaggle URL"))]
    classes: Annotated[list[int], Field(min_length=2, description="Fashion-MNIST labels of the target task")]
    images_per_class: Annotated[int, Field(gt=0, le=100)] = 100
    finetune_warmup: Annotated[float, Field(ge=0, lt=1, description=(
        "share of the profile's epochs that train the new head with the base frozen before the fine-tuning "
        "model trains with its own settings (the Keras guide's recipe); 0 fine-tunes from a fresh head"))] = 0.5
    pretrain: Pretrain | None = None  # how the offline default base was built


class Exercise(_Strict):
    title: str
    notebook: str
    autograder: str
    entry: str = "build_model"
    extra_entries: list[str] = []  # more functions the notebook defines and the checks grade
    options: str | None = None  # an optional function returning training options as data (early stopping)
    transfer: Transfer | None = None
    checks: dict[str, Check]
    compile: Compile = Compile()
    sandbox: Sandbox = Sandbox()
    profiles: dict[Literal["smoke", "full"], Profile]
    baselines: dict[str, Baseline] = {}


class EarlyStopping(_Strict):
    """Early stopping, as the student asks for it; the grader builds keras.callbacks.EarlyStopping itself."""

    monitor: Literal["val_loss", "val_accuracy", "loss", "accuracy"] = "val_loss"
    patience: Annotated[int, Field(ge=0, le=100)] = 3
    min_delta: Annotated[float, Field(ge=0)] = 0.0
    restore_best_weights: bool = True


class FitOptions(_Strict):
    """Training options a notebook may return as data (never code): they travel beside the .keras file."""

    validation_split: Annotated[float, Field(ge=0, le=0.5, description="fraction of the training images held out")] = 0.0
    early_stopping: EarlyStopping | None = None

    @model_validator(mode="after")
    def _needs_validation(self) -> "FitOptions":
        if self.early_stopping and self.early_stopping.monitor.startswith("val_") and not self.validation_split:
            raise ValueError(f"early_stopping monitors {self.early_stopping.monitor!r}, which needs held-out images: "
                             "set validation_split (e.g. 0.2)")
        return self


class Course(_Strict):
    name: str
    exercises: dict[str, Exercise]


class LoadedCourse:
    """A validated course.yml together with the folder it lives in."""

    def __init__(self, course: Course, root: Path):
        self.course = course
        self.root = root
        self.path = root / COURSE_FILE

    def exercise(self, name: str) -> Exercise:
        try:
            return self.course.exercises[name]
        except KeyError:
            known = sorted(self.course.exercises)
            raise ConfigError(
                f"Unknown exercise: expected one of {', '.join(known)}. Received: exercise={name!r}.",
                tip=_did_you_mean(name, known) or f"Exercises are declared under `exercises:` in {self.path}.",
            ) from None

    def source_notebook(self, name: str) -> Path:
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
            raise ConfigError(f"{self.path}: exercises.{name}: expected a `transfer:` section with the base's handle.")
        handle = transfer.handle
        return handle if "://" in handle else str((self.root / handle).resolve())

    def profile(self, name: str, profile: str) -> Profile:
        profiles = self.exercise(name).profiles
        if profile not in profiles:
            raise ConfigError(
                f"{self.path}: exercises.{name}.profiles: expected a `{profile}` profile. "
                f"Received: profiles={sorted(profiles)}.",
                tip=f"Add exercises.{name}.profiles.{profile} with epochs, train_size and thresholds.",
            )
        return profiles[profile]


def find_course_root(start: Path | None = None) -> Path:
    """The folder holding course.yml: $DEEPGRADE_COURSE, else the first one up from ``start``."""
    env = os.environ.get("DEEPGRADE_COURSE")
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
    raise ConfigError(
        f"No {COURSE_FILE} found in {here} or any folder above it.",
        tip="Run deepgrade inside the course folder, pass --course PATH, or set DEEPGRADE_COURSE.",
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
        raise ConfigError(_describe(exc, file)) from None
    loaded = LoadedCourse(course, root.resolve())
    _check_files(loaded)
    return loaded


def _check_files(loaded: LoadedCourse) -> None:
    for name, ex in loaded.course.exercises.items():
        files = {"notebook": ex.notebook, "autograder": ex.autograder,
                 **{f"baselines.{b}.answer": spec.answer for b, spec in ex.baselines.items()}}
        for key, rel in files.items():
            if not (loaded.root / rel).is_file():
                raise ConfigError(
                    f"{loaded.path}: exercises.{name}.{key}: expected an existing file. Received: {rel!r} "
                    f"(looked in {loaded.root}).",
                    tip="Paths in course.yml are relative to the folder holding it.",
                )
        if ex.transfer is not None:
            _check_transfer(loaded, name, ex.transfer)
        for b, spec in ex.baselines.items():
            unknown = [c for c in spec.fails if c not in ex.checks]
            if unknown:
                raise ConfigError(f"{loaded.path}: exercises.{name}.baselines.{b}.fails: expected checks of "
                                  f"{name} ({', '.join(ex.checks)}). Received: {unknown}.")


def _check_transfer(loaded: LoadedCourse, name: str, transfer: Transfer) -> None:
    where = f"{loaded.path}: exercises.{name}.transfer"
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


# --- error wording -----------------------------------------------------------

_EXPECTED = {
    "int_parsing": "an integer",
    "int_type": "an integer",
    "float_parsing": "a number",
    "float_type": "a number",
    "string_type": "a string",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "list_type": "a list",
    "bool_type": "true or false",
    "missing": "this key (it is required)",
}


def _describe(exc: ValidationError, file: Path) -> str:
    lines = [f"{file}: {exc.error_count()} problem(s):"]
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        where = ".".join(loc) or "(top level)"
        kind = err["type"]
        if kind == "extra_forbidden":
            parent = ".".join(loc[:-1]) or "(top level)"
            allowed = _fields_at(Course, loc[:-1])
            hint = _did_you_mean(loc[-1], allowed)
            lines.append(
                f"  {where}: unknown key {loc[-1]!r} under {parent}. Expected one of: {', '.join(sorted(allowed))}."
                + (f" {hint}" if hint else "")
            )
        elif kind == "missing":
            lines.append(f"  {where}: missing; this key is required.")
        else:
            expected = _EXPECTED.get(kind, err["msg"][0].lower() + err["msg"][1:])
            lines.append(f"  {where}: expected {expected}. Received: {err.get('input')!r}.")
    return "\n".join(lines)


def _did_you_mean(word: str, choices: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"Did you mean {close[0]!r}?" if close else ""


def _fields_at(model: type[BaseModel], loc: list[str]) -> list[str]:
    """Field names of the model found by following ``loc`` down from ``model``."""
    node: Any = model
    for part in loc:
        node = _unwrap(node)
        if isinstance(node, type) and issubclass(node, BaseModel):
            field = node.model_fields.get(part)
            if field is None:
                return []
            node = field.annotation
        elif typing.get_origin(node) is dict:
            node = typing.get_args(node)[1]
        else:
            return []
    node = _unwrap(node)
    return list(node.model_fields) if isinstance(node, type) and issubclass(node, BaseModel) else []


def _unwrap(node: Any) -> Any:
    """Strip Optional[...] / X | None and Annotated[...] from a type."""
    while True:
        origin = typing.get_origin(node)
        if origin is Annotated:
            node = typing.get_args(node)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(node) if a is not type(None)]
            node = args[0] if len(args) == 1 else node
            if len(args) != 1:
                return node
        else:
            return node
