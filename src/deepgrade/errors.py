"""The three kinds of failure deepgrade tells apart.

Only the CLI turns them into exit codes (see ``cli.py``); the library raises.
"""

from __future__ import annotations


class DeepgradeError(Exception):
    """Base class: a failure with a message a person can act on."""

    exit_code = 3

    def __init__(self, message: str, *, tip: str | None = None):
        super().__init__(message)
        self.message = message
        self.tip = tip

    def __str__(self) -> str:
        return self.message if not self.tip else f"{self.message}\n{self.tip}"


class ConfigError(DeepgradeError):
    """course.yml, a question bank or a command-line argument is wrong: the course author can fix it."""

    exit_code = 2


class StudentCodeError(DeepgradeError):
    """The student's notebook failed: it raised, timed out, ran out of memory or returned no model.

    Grades it as zero for every check that needs the model; never aborts a batch.
    """

    exit_code = 1


class GraderError(DeepgradeError):
    """The trusted grader itself failed (missing data, broken installation): not the student's fault."""

    exit_code = 3
