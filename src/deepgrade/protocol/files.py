"""File names and size caps of what crosses the trust boundary, defined once for both sides."""

from __future__ import annotations

NOTEBOOK = "submission.ipynb"  # the copy of the student's notebook in the sandbox's working directory
REQUEST = "request.json"       # what the sandbox asks the child to do (ChildRequest)
RESULT = "result.json"         # what the child says it did (ChildResult)
MODELS = "models"              # the folder the child saves its model files and options into
BASE = "pretrained_base"       # the course's base, beside the notebook (as nbgrader releases it)
REPORT = "report.json"         # the trusted grader's report (Report)
GRADE_REQUEST = "grade_request.json"  # what the grader's own process is asked to grade (GradeRequest)

MAX_OPTIONS_BYTES = 65_536     # training options are a few settings, never data
MAX_RESULT_BYTES = 1_048_576   # the child's result: messages only


def model_file(entry: str) -> str:
    """The file an entry function's model is saved to, inside MODELS."""
    return f"{entry}.keras"


def options_file(name: str) -> str:
    """The file the options function's return value is saved to (JSON), inside MODELS."""
    return f"{name}.json"
