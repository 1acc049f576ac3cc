"""A built submission: what the sandbox hands the trusted grader (model files and messages, nothing else)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..errors import StudentCodeError


class Submission(BaseModel):
    """Per entry function, the model file or the message saying why there is none.

    ``failure`` is set when the notebook as a whole failed (a cell raised, a time-out): every entry then
    reports it. ``options`` is what the notebook's options function returned (plain data, not yet validated).
    """

    model_config = ConfigDict(frozen=True)

    models: dict[str, Path] = {}
    errors: dict[str, str] = {}
    failure: str | None = None
    options: dict[str, Any] | None = None
    options_error: str | None = None
    log: str = ""
    seconds: float = 0.0
    isolation: str | None = None  # "bubblewrap", or "none (why)"; None: not built in a sandbox (a model file given)
    code: str | None = None       # sha256 of the code the student's jail ran (what the graded functions need)
    not_run: str | None = None    # one line: the notebook's cells that did not run, and why
    notes: list[str] = []         # errors that cost nothing (in code that only may matter), cells not parsed

    @classmethod
    def of_model(cls, entry: str, path: Path, options: dict | None = None) -> "Submission":
        """An already saved model (the in-notebook checks, tests), as if ``entry`` had returned it."""
        return cls(models={entry: Path(path)}, options=options)

    @classmethod
    def failed(cls, message: str, *, log: str = "", seconds: float = 0.0, isolation=None) -> "Submission":
        return cls(failure=message, log=log, seconds=seconds, isolation=isolation)

    def model(self, entry: str) -> Path:
        """The model file ``entry()`` returned, or StudentCodeError with the reason there is none."""
        if entry in self.models:
            return self.models[entry]
        raise StudentCodeError(self.failure or self.errors.get(entry, f"{entry}() returned no model."))

    def raw_options(self) -> dict | None:
        """The options function's return value, or StudentCodeError with the reason it is unusable."""
        if self.failure:
            raise StudentCodeError(self.failure)
        if self.options_error:
            raise StudentCodeError(self.options_error)
        return self.options
