"""File names and size caps of what crosses the trust boundary, defined once for both sides."""

from __future__ import annotations

import json

NOTEBOOK = "submission.ipynb"  # the copy of the student's notebook in the sandbox's working directory
REQUEST = "request.json"       # what the sandbox asks the child to do (ChildRequest)
RESULT = "result.json"         # what the child says it did (ChildResult)
MODELS = "models"              # the folder the child saves its model files and options into
BASE = "pretrained_base"       # the course's base, beside the notebook (as nbgrader releases it)
REPORT = "report.json"         # the trusted grader's report (Report)
ERROR = "error.json"           # or why it could not grade ({"kind", "message", "tip"})
GRADE_REQUEST = "grade_request.json"  # what the grader's own process is asked to grade (GradeRequest)
PROGRESS = "progress.json"     # the grader's progress during a grade (Progress), before its report

RESULT_FD_ENV = "DEEPGRADE_RESULT_FD"  # the jail's pipe back: its fd number, in the jail's environment

MAX_OPTIONS_BYTES = 65_536     # training options are a few settings, never data
MAX_RESULT_BYTES = 1_048_576   # the child's result: messages only


def model_file(entry: str) -> str:
    """The file an entry function's model is saved to, inside MODELS."""
    return f"{entry}.keras"


def options_file(name: str) -> str:
    """The file the options function's return value is saved to (JSON), inside MODELS."""
    return f"{name}.json"


# -- the result pipe: what a jail sends back is a sequence of frames, each a file -------------------------
# A frame is one line of JSON {"name": ..., "size": N}, then N bytes. A later frame of a name replaces an
# earlier one (the child sends its result again after each entry function), so a crash keeps what was sent.

def frame(name: str, data: bytes) -> bytes:
    return (json.dumps({"name": name, "size": len(data)}) + "\n").encode() + data


def unframe(blob: bytes, allowed) -> dict[str, bytes]:
    """The files in ``blob`` whose names ``allowed(name)`` accepts; reading stops at the first malformed frame."""
    found: dict[str, bytes] = {}
    at = 0
    while at < len(blob):
        end = blob.find(b"\n", at, at + 4096)
        if end < 0:
            break
        try:
            header = json.loads(blob[at:end])
            name, size = header["name"], header["size"]
        except (ValueError, KeyError, TypeError):
            break
        if not isinstance(name, str) or not isinstance(size, int) or size < 0 or end + 1 + size > len(blob):
            break
        if allowed(name):
            found[name] = blob[end + 1:end + 1 + size]
        at = end + 1 + size
    return found
