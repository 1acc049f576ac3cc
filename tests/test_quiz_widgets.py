"""The quiz as ipywidgets: driven like a student clicks, and executed in a real kernel from the shipped notebook."""

import nbformat
from nbclient import NotebookClient

from conftest import REPO
from deepgrade.quiz import show


def test_widgets_check_answers_like_the_other_deliveries():
    widget = show("pooling", "alice", course=REPO)
    q1, q2 = widget.questions[0], widget.questions[1]
    q1.answer.value = "ten"
    q1.check.click()
    assert "Expected a matrix" in q1.feedback.value and q1.first is None
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


def test_the_self_check_notebook_runs_in_a_kernel(tmp_path):
    nb = nbformat.read(REPO / "quizzes" / "self_check.ipynb", as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    widgets = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
               if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widgets) == 4
    assert not any(o.output_type == "error" for c in nb.cells if c.cell_type == "code" for o in c.outputs)
