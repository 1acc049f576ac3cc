"""The sandbox's conversation with the child process that runs the student's notebook.

The sandbox writes a :class:`ChildRequest`; the child writes a :class:`ChildResult` (rewritten after each
entry function, so a crash later keeps what was done). Nothing in a result is trusted beyond its messages:
the grader only ever loads the model files, itself.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ChildRequest(_Message):
    notebook: str                 # relative to the child's working directory (files.NOTEBOOK)
    models: str                   # folder to save into (files.MODELS)
    entries: list[str]            # entry functions to call, the exercise's main one first
    options: str | None = None    # the optional function returning training options as data
    base: str | None = None       # folder of the pretrained base, for entry functions that take an argument
    values: list[str] = []        # names whose values come back as plain data (a quiz's answers)
    keep_going: bool = False      # run every cell even after one raised (a quiz: each answer stands alone)


class Outcome(_Message):
    """What became of one function call: ``ok``, or a message saying why not."""

    ok: bool = False
    absent: bool = False          # an optional function the notebook does not define
    ename: str | None = None      # the exception's type, when the call raised
    message: str | None = None


class ChildResult(_Message):
    entries: dict[str, Outcome] = {}
    options: Outcome | None = None
    values: dict[str, Any] = {}   # the requested names that hold plain data (JSON)
    value_errors: dict[str, str] = {}  # the requested names that do not, and why
    ename: str | None = None      # the notebook itself failed (a cell raised, or it could not be read)
    message: str | None = None
    code: str | None = None       # sha256 of the code that ran (what the graded functions need), statement by statement
    not_run: Annotated[str, Field(max_length=2000)] | None = None  # one line: which cells did not run, and why
    notes: Annotated[list[Annotated[str, Field(max_length=2000)]], Field(max_length=16)] = []  # errors that cost nothing
