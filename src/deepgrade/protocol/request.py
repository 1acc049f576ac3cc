"""A request to the trusted grader's own process (:mod:`deepgrade.grader.serve`, sent by its worker)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from .submission import Submission


class GradeRequest(BaseModel):
    """Grade the model file ``model`` as what ``entry`` returned, for ``exercise`` of the course at ``course``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    course: Path
    exercise: str
    model: Path | None = None                 # one model file, or
    submission: Submission | None = None      # a whole built submission (the grader jail's input)
    entry: str | None = None                  # default: the exercise's main entry function
    options: dict[str, Any] | None = None     # what the notebook's options function returned
    profile: Literal["smoke", "full"] | None = None
    seed: int | None = None
    only: list[str] | None = None             # check names; None: every check
    train: bool = True                        # False: only the checks that do not train (a notebook's first cells)
    retry: bool = True                        # False: a narrow miss is not trained again (calibration)

    @model_validator(mode="after")
    def _one_input(self) -> "GradeRequest":
        if (self.model is None) == (self.submission is None):
            raise ValueError("expected exactly one of `model` (a .keras file) and `submission`")
        return self
