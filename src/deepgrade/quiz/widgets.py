"""The quiz inside Jupyter, as ipywidgets: ``show("pooling", student="alice")`` in any notebook.

Same variants, parsing and grading as the terminal and the web page; the
first checked answer to each question counts, a malformed one costs nothing.
"""

from __future__ import annotations

import html
from pathlib import Path

import ipywidgets as w

from .bank import Quiz, load_bank, make_quiz
from .questions import FREE, AnswerFormatError, Variant, grade, parse


class QuestionBox(w.VBox):
    def __init__(self, number: int, variant: Variant, on_first: callable):
        self.variant, self.on_first, self.first = variant, on_first, None
        prompt = w.HTML(f"<b>Question {number}</b><pre style='white-space:pre-wrap'>{html.escape(variant.prompt)}</pre>")
        if variant.kind == "choice":
            self.answer = w.RadioButtons(options=list(variant.choices), value=None, layout=w.Layout(width="auto"))
        else:
            self.answer = w.Text(placeholder="your answer", layout=w.Layout(width="60%"))
        self.check = w.Button(description="Check", button_style="primary")
        self.hint = w.Button(description="Hint")
        self.feedback = w.HTML()
        self.explanation = w.HTML()
        self.check.on_click(self._check)
        self.hint.on_click(lambda _: setattr(self.feedback, "value", f"<i>Hint: {html.escape(variant.hint)}</i>"))
        super().__init__([prompt, self.answer, w.HBox([self.check, self.hint]), self.feedback, self.explanation])

    def _check(self, _=None) -> None:
        try:
            value = parse(self.variant, self.answer.value or "")
        except AnswerFormatError as exc:
            self.feedback.value = f"<span style='color:#8a5a00'>{html.escape(f'{exc} {FREE}')}</span>"
            return
        result = grade(self.variant, value)
        if self.first is None:
            self.first = result
            self.on_first()
        color = "#137333" if result.correct else "#b3261e"
        self.feedback.value = f"<b style='color:{color}'>{html.escape(result.feedback)}</b>"
        self.explanation.value = f"<div style='background:#f3f6fb;padding:4px'>Why: {html.escape(self.variant.explanation)}</div>"


class QuizWidget(w.VBox):
    def __init__(self, quiz: Quiz):
        self.quiz = quiz
        self.score = w.HTML()
        self.questions = [QuestionBox(n, v, self._update) for n, v in enumerate(quiz.variants, start=1)]
        title = w.HTML(f"<h3>{html.escape(quiz.title)}</h3><p>Self-check quiz for {html.escape(quiz.student)}</p>")
        super().__init__([title, *self.questions, self.score])
        self._update()

    def _update(self) -> None:
        got = sum(q.first.score for q in self.questions if q.first)
        answered = sum(q.first is not None for q in self.questions)
        self.score.value = (f"<b>Score: {got:g} / {self.quiz.max_score:g}</b> "
                            f"({answered} of {len(self.questions)} answered)")


def show(name: str, student: str, course: Path | str | None = None) -> QuizWidget:
    """The quiz ``name`` for ``student`` as a widget (the notebook displays the returned value)."""
    from ..course import find_course_root

    root = Path(course) if course else find_course_root()
    return QuizWidget(make_quiz(load_bank(name, root), student))
