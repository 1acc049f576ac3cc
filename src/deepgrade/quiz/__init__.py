"""Self-check quizzes: question banks (data), seeded variants, and their four deliveries.

- :mod:`.bank`: quizzes/*.yml validated, and the quiz a student id seeds;
- :mod:`.questions`: each question's ``generate`` / ``parse`` / ``grade``, on the pure arithmetic of
  :mod:`deepgrade.convmath`;
- deliveries: the terminal (:mod:`.terminal`), a self-contained web page (:mod:`.html`), Jupyter widgets
  (:mod:`.widgets`, ``show``) and an nbgrader assignment (:mod:`.nbgrader`).
"""

from .bank import PLACEHOLDER_IDS, Bank, Quiz, available, check_student, load_bank, make_quiz, student_seed
from .html import render_html, write_html
from .nbgrader import (
    NBGRADER_VARIANT,
    WrongAnswer,
    answer_check,
    answer_format,
    assignment_name,
    expected_formats,
    source_notebook,
    write_source,
)
from .questions import FREE, GENERATORS, AnswerFormatError, Result, Variant, answer_dims, grade, parse
from .terminal import run as run_in_terminal


def show(name: str, student: str, course=None):
    """The quiz ``name`` for ``student`` as Jupyter widgets (ipywidgets is imported only here)."""
    from .widgets import show as show_widgets

    return show_widgets(name, student, course)


__all__ = [
    "FREE", "GENERATORS", "NBGRADER_VARIANT", "PLACEHOLDER_IDS", "AnswerFormatError", "Bank", "Quiz", "Result",
    "Variant", "WrongAnswer", "answer_check", "answer_dims", "answer_format", "assignment_name", "available",
    "check_student", "expected_formats", "grade", "load_bank", "make_quiz", "parse", "render_html",
    "run_in_terminal", "show", "source_notebook", "student_seed", "write_html", "write_source",
]
