"""The kinds of failure deepgrade tells apart, and the few wording helpers every message shares.

Only the front doors turn them into exit codes (``cli.main``) or gradebook
entries (``nbgrader_ext``); the library raises. An exception that is not a
:class:`DeepgradeError` is a bug in deepgrade: the CLI reports it as "the
grader failed" with exit code 3.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Union


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


class CheckFailed(DeepgradeError, AssertionError):
    """A check did not pass; the message is for the student. ``layers``: the architecture table the feedback
    shows with it (:class:`deepgrade.protocol.LayerRow`), when the check compared layers. ``structural``: it
    failed on what the model is, not on what a training gave, so no second training can change it (a check
    that trains then counts as one that does not: :mod:`deepgrade.grader.run`'s retry rule)."""

    exit_code = 1

    def __init__(self, message: str, *, tip: str | None = None, layers: list | None = None, structural: bool = False):
        super().__init__(message, tip=tip)
        self.layers = layers or []
        self.structural = structural


class GraderError(DeepgradeError):
    """The trusted grader itself failed (missing data, broken installation): not the student's fault."""

    exit_code = 3


# --- wording shared by every message ---------------------------------------------------

def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's text, cut to ``limit`` characters ('' when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else ""


def said(exc: BaseException, limit: int = 300) -> str:
    """``ValueError: the first line`` (or just the type's name), for messages that quote an exception."""
    line = first_line(exc, limit)
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``Did you mean 'mlp'?`` for the closest of ``choices``, or '' when none is close."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"Did you mean {close[0]!r}?" if close else ""


_EXPECTED = {
    "int_parsing": "an integer",
    "int_type": "an integer",
    "float_parsing": "a number",
    "float_type": "a number",
    "string_type": "a string",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "list_type": "a list",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
}


def validation_problems(exc: Any, schema: type | None = None, *,
                        where: Callable[[tuple], str] | None = None) -> list[str]:
    """One line per problem of a pydantic ``ValidationError``: ``key.path: expected X. Received: Y.``

    ``schema`` (the model that was validated) lists the keys allowed where an unknown key was found, for
    "Expected one of ... Did you mean ...?"; ``where(loc)`` names a location (default: the dotted key path).
    """
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        at = where(loc) if where else (".".join(str(p) for p in loc) or "(top level)")
        kind = err["type"]
        if kind == "extra_forbidden":
            allowed = sorted(keys_at(schema, loc[:-1])) if schema is not None else []
            hint = did_you_mean(loc[-1], allowed)
            expected = f" Expected one of: {', '.join(allowed)}." if allowed else ""
            lines.append(f"{at}: unknown key {loc[-1]!r}.{expected}" + (f" {hint}" if hint else ""))
        elif kind == "missing":
            lines.append(f"{at}: missing; this key is required.")
        elif kind == "value_error":
            lines.append(f"{at}: {err['msg'].removeprefix('Value error, ')}")
        else:
            expected = _EXPECTED.get(kind, err["msg"][0].lower() + err["msg"][1:])
            lines.append(f"{at}: expected {expected}. Received: {err.get('input')!r}.")
    return lines


def keys_at(schema: Any, loc: tuple | list) -> list[str]:
    """Field names of the pydantic model found by following ``loc`` down from ``schema`` ([] if none)."""
    from pydantic import BaseModel

    node: Any = schema
    for part in loc:
        node = _unwrap(node)
        if isinstance(node, type) and issubclass(node, BaseModel):
            field = node.model_fields.get(str(part))
            if field is None:
                return []
            node = field.annotation
        elif typing.get_origin(node) in (dict, list):
            node = typing.get_args(node)[-1]
        else:
            return []
    node = _unwrap(node)
    return list(node.model_fields) if isinstance(node, type) and issubclass(node, BaseModel) else []


def _unwrap(node: Any) -> Any:
    """Strip Optional[...] / X | None and Annotated[...] from a type."""
    while True:
        origin = typing.get_origin(node)
        if origin is Annotated:
            node = typing.get_args(node)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(node) if a is not type(None)]
            if len(args) != 1:
                return node
            node = args[0]
        else:
            return node
