"""course.yml's schema: the course as frozen pydantic models (validated by :mod:`.loader`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

COURSE_FILE = "course.yml"
PROFILES = ("smoke", "full")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sandbox(_Strict):
    """Limits of the student's jail for this exercise; unset: deepgrade's defaults (the README's limits table)."""

    time_limit_s: Annotated[float | None, Field(gt=0, description="wall-clock limit for running the notebook and build_model()")] = None
    memory_limit_mb: Annotated[int | None, Field(ge=512, description="address-space limit per process")] = None
    cpu_time_s: Annotated[int | None, Field(gt=0, description="CPU time per process")] = None
    processes: Annotated[int | None, Field(ge=64, description="processes and threads")] = None
    scratch_mb: Annotated[int | None, Field(ge=16, description="the working directory's size")] = None
    tmp_mb: Annotated[int | None, Field(ge=16, description="the size of /tmp")] = None
    file_mb: Annotated[int | None, Field(ge=1, description="the largest file written")] = None
    open_files: Annotated[int | None, Field(ge=64, description="open files per process")] = None
    output_kb: Annotated[int | None, Field(ge=1, description="captured output kept")] = None
    return_mb: Annotated[int | None, Field(ge=1, description="model files returned, in all")] = None


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


class Answer(_Strict):
    """An answer students give (the exercise's own text suggests it, or a variation of it): calibration trains it
    beside the reference and measures how often it gets the verdict named here, on every check that trains."""

    answer: str  # a file of solution-cell code, as in tests/submissions/
    fails: list[str] = []  # the checks it must fail; none: it earns full marks
    why: Annotated[str, Field(min_length=1, description="why that verdict is the right one for this answer")]


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
    answers: dict[str, Answer] = {}  # what students hand in: each one's verdict calibrated (docs/calibration.md)


class Course(_Strict):
    name: str
    allow_unisolated: Annotated[bool, Field(description=(
        "grade other people's work (nbgrader autograde) even where no sandbox can be made; every grade then "
        "says it was not isolated"))] = False
    exercises: dict[str, Exercise]
