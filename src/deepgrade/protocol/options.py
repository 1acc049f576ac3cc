"""Training options a notebook may return as data (never code); they travel beside the ``.keras`` file."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import StudentCodeError, validation_problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


def parse_options(raw: dict | None, entry: str = "fit_options") -> FitOptions:
    """Validate the training options a notebook returned (data only) or say what was expected."""
    if raw is None:
        return FitOptions()
    try:
        return FitOptions.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(validation_problems(exc, FitOptions, where=lambda loc: ".".join(map(str, loc)) or "options"))
        raise StudentCodeError(
            f"{entry}() returned options the grader cannot use: {problems} Expected a dict such as "
            "{'validation_split': 0.2, 'early_stopping': {'monitor': 'val_loss', 'patience': 3, "
            "'restore_best_weights': True}}, or {} for none."
        ) from None


def options_json(value: Any, name: str = "fit_options") -> str:
    """What the notebook's options function returned, as the JSON that travels beside the model (validated by
    the grader); StudentCodeError, worded for the student, when it is not None or a dict of plain data."""
    if value is not None and not isinstance(value, dict):
        raise StudentCodeError(f"{name}() returned a {type(value).__name__}; expected a dict of options "
                               "(plain numbers, strings and booleans) or None.")
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StudentCodeError(f"{name}() returned options that are not plain data ({exc}); expected a dict of "
                               "numbers, strings and booleans: the grader builds callbacks itself, "
                               "so return their settings, not keras.callbacks objects.") from None
