"""The quiz as ipywidgets: driven like a student clicks, and executed in a real kernel from the shipped notebook."""

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import REPO
from deepgrade.quiz import FREE, show


def test_widgets_check_answers_like_the_other_deliveries():
    widget = show("pooling", "alice", course=REPO)
    q1, q2 = widget.questions[0], widget.questions[1]
    q1.answer.value = "ten"
    q1.check.click()
    assert "Expected a 2x2 matrix: rows separated by" in q1.feedback.value and q1.first is None
    assert FREE in q1.feedback.value
    q1.answer.value = "10 7; 8 12"
    q1.check.click()
    assert "Correct." in q1.feedback.value and "Why:" in q1.explanation.value
    q2.answer.value = "1 1; 1 1"
    q2.check.click()
    assert "Not quite." in q2.feedback.value
    q2.hint.click()
    assert "Hint:" in q2.feedback.value
    assert "Score: 1 / 7</b> (2 of 7 answered)" in widget.score.value


def test_choice_question_widget():
    widget = show("convolution", "bob", course=REPO)
    q = widget.questions[0]
    q.answer.value = "Convolution"
    q.check.click()
    assert "Correct." in q.feedback.value


PLACEHOLDER = 'STUDENT = "your-id"'


def self_check(student: str | None = None) -> nbformat.NotebookNode:
    """The shipped notebook, with ``student`` written in place of the placeholder id (None: as shipped)."""
    nb = nbformat.read(REPO / "quizzes" / "self_check.ipynb", as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert first.source.startswith(PLACEHOLDER)
    if student is not None:
        first.source = first.source.replace(PLACEHOLDER, f"STUDENT = {student!r}", 1)
    return nb


def outputs(nb, kind=None):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if kind is None or o.output_type == kind]


def test_the_self_check_notebook_runs_in_a_kernel(tmp_path):
    nb = self_check("alice@example.org")
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    widgets = [o for o in outputs(nb) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widgets) == 4
    assert not outputs(nb, "error")


@pytest.mark.parametrize("student, received", [(None, "Received: 'your-id', the placeholder."),
                                               ("", "Received: nothing."), ("   ", "Received: only blanks ('   ').")])
def test_the_self_check_notebook_refuses_to_start_without_an_id(student, received):
    """As shipped (placeholder id) or with an empty id: the first cell stops with what is expected, what was given
    and what to do, and no quiz cell makes a quiz (run with errors allowed, so that every cell is tried)."""
    nb = self_check(student)
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(REPO)}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    first = [o for o in code[0].outputs if o.output_type == "error"]
    assert len(first) == 1 and first[0].ename == "ConfigError"
    message = first[0].evalue
    assert message.startswith("Expected your own student id (e.g. your e-mail address or matriculation number)")
    assert received in message and 'Write your id between the quotes of STUDENT = "..." in this cell' in message
    for cell in code[1:]:  # each quiz cell: refused too, with the same message; no widget
        assert [o.ename for o in cell.outputs if o.output_type == "error"] == ["ConfigError"], cell.source
        assert received in cell.outputs[-1].evalue
    assert not [o for o in outputs(nb) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
