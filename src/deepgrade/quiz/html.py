"""The quiz as one self-contained static web page: no server, no network, works on a phone.

The page checks answers in the browser with the same rules as
:func:`deepgrade.quiz.questions.parse` and :func:`~deepgrade.quiz.questions.grade`
(tests drive it in headless Chromium). The answers travel in the page, lightly
encoded: this is a self-check, not an exam; graded quizzes go through nbgrader.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import jinja2

from .bank import Quiz

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("deepgrade.quiz", "templates"), autoescape=True)


def _payload(quiz: Quiz) -> str:
    items = [{"kind": v.kind, "answer": v.answer, "tolerance": v.tolerance, "points": v.points, "hint": v.hint,
              "explanation": v.explanation} for v in quiz.variants]
    return base64.b64encode(json.dumps(items).encode("utf-8")).decode("ascii")[::-1]


def render_html(quiz: Quiz) -> str:
    return _ENV.get_template("quiz.html.j2").render(quiz=quiz, payload=_payload(quiz))


def write_html(quiz: Quiz, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(quiz), encoding="utf-8")
    return path
