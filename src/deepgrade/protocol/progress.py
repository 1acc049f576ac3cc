"""What a grade in progress says about itself: the stage it is in and, while it trains, the epoch.

Sent by the grader's process as it works (one JSON line each, forwarded by its server as a frame) and shown
by ``deepgrade check`` and the notebook's check cells. Information only: nothing in a grade depends on it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

STAGES = {
    "sandbox": "running the notebook in its sandbox",
    "load": "loading the model",
    "checks": "checking the architecture",
    "train": "training",
    "evaluate": "measuring accuracy on the test set",
}


class Progress(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    stage: Literal["sandbox", "load", "checks", "train", "evaluate"]
    epoch: Annotated[int, Field(ge=0, le=100_000)] | None = None    # epochs done (train)
    epochs: Annotated[int, Field(ge=0, le=100_000)] | None = None   # of how many
    what: Annotated[str, Field(max_length=80)] = ""                 # which training, when a check trains several
    metrics: Annotated[dict[Annotated[str, Field(max_length=40)], float], Field(max_length=8)] = {}

    def text(self) -> str:
        """``training: epoch 2/3 (loss 0.5213, accuracy 0.8120)``."""
        words = STAGES[self.stage] + (f" {self.what}" if self.what else "")
        if self.epoch is not None and self.epochs:
            words += f": epoch {self.epoch}/{self.epochs}"
        if self.metrics:
            words += " (" + ", ".join(f"{k} {v:.4f}" for k, v in self.metrics.items()) + ")"
        return words
