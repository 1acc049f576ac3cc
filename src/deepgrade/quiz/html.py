"""The quiz as one self-contained static web page: no server, no network, works on a phone.

The page checks answers in the browser with the same rules as
:func:`deepgrade.quiz.questions.parse` and :func:`~deepgrade.quiz.questions.grade`
(tests drive it in headless Chromium). The answers travel in the page, lightly
encoded: this is a self-check, not an exam; graded quizzes go through nbgrader.
The page keeps the student's progress (answers, attempts, score) in the
browser's localStorage under :func:`storage_key`; its Reset button clears it.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import jinja2

from .bank import Quiz
from .questions import FREE, Variant, answer_count, answer_form, shape_example

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("deepgrade.quiz", "templates"), autoescape=True)


def _payload(quiz: Quiz) -> str:
    """Per question what the page checks with: the answer (encoded, as before) and, for its format errors, the
    count of numbers a well-formed answer has and the words of :func:`~deepgrade.quiz.questions.parse`."""
    items = [{"kind": v.kind, "answer": v.answer, "tolerance": v.tolerance, "points": v.points, "hint": v.hint,
              "explanation": v.explanation, "dims": list(v.dims),
              "form": answer_form(v.kind, v.dims, len(v.choices)), "count": answer_count(v.kind, v.dims)}
             for v in quiz.variants]
    return base64.b64encode(json.dumps(items).encode("utf-8")).decode("ascii")[::-1]


def _placeholder(v: Variant) -> str:
    """The grey text in an empty answer box: the form of the answer and its count of numbers."""
    if v.kind == "shape":
        return f"{v.dims[0]} numbers, e.g. {' '.join(map(str, shape_example(v.dims[0])))}"
    if v.kind == "matrix":
        return f"{v.dims[0]} rows of {v.dims[1]} numbers; rows separated by ;"
    return {"int": "a whole number", "float": "a number"}.get(v.kind, "")


def storage_key(quiz: Quiz) -> str:
    """Where the page keeps its progress in the browser: one key per quiz and student (and variant)."""
    return f"deepgrade-quiz:v1:{quiz.name}:{quiz.student}:{quiz.seed:016x}"


def render_html(quiz: Quiz) -> str:
    return _ENV.get_template("quiz.html.j2").render(quiz=quiz, payload=_payload(quiz), free=FREE,
                                                    placeholder=_placeholder, storage_key=storage_key(quiz))


def write_html(quiz: Quiz, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(quiz), encoding="utf-8")
    return path
