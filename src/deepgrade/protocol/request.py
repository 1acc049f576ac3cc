"""A request to the trusted grader's own process (``python -m deepgrade.grader REQUEST REPORT``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class GradeRequest(BaseModel):
    """Grade the model file ``model`` as what ``entry`` returned, for ``exercise`` of the course at ``course``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    course: Path
    exercise: str
    model: Path
    entry: str | None = None                  # default: the exercise's main entry function
    options: dict[str, Any] | None = None     # what the notebook's options function returned
    profile: Literal["smoke", "full"] | None = None
    seed: int | None = None
    only: list[str] | None = None             # check names; None: every check
