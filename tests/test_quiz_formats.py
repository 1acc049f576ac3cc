"""A wrong count of numbers is a format error: free, said plainly, and never the answer, in the terminal, the
widgets and the nbgrader quizzes (the web page: tests/test_quiz_html.py)."""

import json
import re

import nbformat
import numpy as np
import pytest
from rich.console import Console

from conftest import REPO
from deepgrade.nbgrader_ext import quiz_verdict
from deepgrade.quiz import (
    FREE,
    NBGRADER_VARIANT,
    AnswerFormatError,
    Variant,
    WrongAnswer,
    answer_check,
    available,
    grade,
    load_bank,
    make_quiz,
    parse,
    run_in_terminal,
    show,
)
from deepgrade.sandbox.runner import Values


def shape(answer):
    return Variant("q", "shape", "?", answer, "Work layer by layer.", "e")


def matrix(answer):
    return Variant("q", "matrix", "?", answer, "Take the largest value of each window.", "e", tolerance=0.01)


def test_the_messages_say_what_was_expected_and_what_was_given():
    with pytest.raises(AnswerFormatError) as info:
        parse(shape([7, 7, 128]), "28 28")
    assert str(info.value) == "Expected 3 numbers (a 3-D shape, e.g. 28 28 1). Received: 2 numbers (28 28)."
    with pytest.raises(AnswerFormatError) as info:
        parse(matrix([[10, 7], [8, 12]]), "1 2 3")
    assert str(info.value) == ("Expected a 2x2 matrix (2 rows of 2 numbers, e.g. 1 2; 3 4). "
                               "Received: 1 row of 3 numbers (1 2 3).")
    with pytest.raises(AnswerFormatError, match=r"^Expected a 3x3 matrix \(3 rows of 3 numbers, e\.g\. 1 2 3; 4 5 6; "
                                                r"7 8 9\)\. Received: 2 rows of 3 numbers \(1 2 3; 4 5 6\)\.$"):
        parse(matrix([[1, 1, 1]] * 3), "[[1, 2, 3], [4, 5, 6]]")
    with pytest.raises(AnswerFormatError, match=r"^Expected a shape such as \(28, 28, 1\) or 28x28x1: 3 whole numbers\. "
                                                r"Received: 'seven by seven'\.$"):
        parse(shape([7, 7, 128]), "seven by seven")


def test_the_right_count_is_graded_as_before():
    v = shape([7, 7, 128])
    assert parse(v, "(None, 7, 7, 128)") == (7, 7, 128) and grade(v, parse(v, "7x7x128")).correct
    assert not grade(v, parse(v, "7 7 64")).correct  # three numbers: graded, and wrong
    m = matrix([[5.75, 4.25], [5.25, 8.5]])
    assert grade(m, parse(m, "5.75 4.25; 5.25 8.5")).correct and not grade(m, parse(m, "1 2; 3 4")).correct


def variants_with_a_count():
    for name in available(REPO):
        for student in ("alice", "bob", "carol", NBGRADER_VARIANT):
            for v in make_quiz(load_bank(name, REPO), student).variants:
                if v.dims:
                    yield f"{name}/{student}/{v.id}", v


def wrong_counts(v):
    flat = np.ravel(v.answer).tolist()
    if v.kind == "shape":
        return [" ".join(map(str, flat[:-1])), " ".join(map(str, flat + [1]))] if len(flat) > 1 else ["1 1"]
    rows, cols = v.dims
    return [" ".join(f"{x:g}" for x in flat),  # every number, in one row
            "; ".join(" ".join(f"{x:g}" for x in row[:-1] or [0, 0]) for row in v.answer),  # one number short per row
            "; ".join(" ".join(f"{x:g}" for x in row) for row in v.answer[:-1] or [[0] * (cols + 1)])]


@pytest.mark.parametrize("where, v", list(variants_with_a_count()), ids=lambda x: x if isinstance(x, str) else "")
def test_every_wrong_count_is_free_and_keeps_the_answer_secret(where, v):
    """Each bank's shape and matrix questions: a wrong count is a format error, and its message is the same
    whatever the answer (another answer of the same size gives the same words), so it cannot tell the answer."""
    other = (shape([x + 3 for x in v.answer]) if v.kind == "shape"
             else matrix((np.array(v.answer) + 3).tolist()))
    for text in wrong_counts(v):
        with pytest.raises(AnswerFormatError) as mine:
            parse(v, text)
        with pytest.raises(AnswerFormatError) as theirs:
            parse(other, text)
        assert str(mine.value) == str(theirs.value), text
        expected = f"Expected {v.dims[0]} numbers" if v.kind == "shape" else f"Expected a {v.dims[0]}x{v.dims[1]} matrix"
        assert str(mine.value).startswith(expected) and " Received: " in str(mine.value), str(mine.value)


def test_terminal_a_wrong_count_costs_no_attempt():
    quiz = make_quiz(load_bank("stride_padding", REPO), "tess")
    # q1 (a choice) right; q2, a 3-D shape: two numbers first (free), then the answer; the rest right
    answers = iter(["2", "28 28", "28 28 4", *[" ".join(map(str, v.answer)) if v.kind == "shape" else str(v.answer)
                                                for v in quiz.variants[2:]]])
    console = Console(record=True, width=200)
    score = run_in_terminal(quiz, ask=lambda _: next(answers), console=console)
    out = console.export_text()
    assert "Expected 3 numbers (a 3-D shape, e.g. 28 28 1). Received: 2 numbers (28 28). " + FREE in out
    assert score == quiz.max_score  # the two numbers cost nothing: the next answer still counted
    assert f"Score: {quiz.max_score:g} / {quiz.max_score:g}" in out


def test_widgets_a_wrong_count_costs_no_attempt():
    widget = show("pooling", "alice", course=REPO)
    q1 = widget.questions[0]
    q1.answer.value = "10 7 8 12"
    q1.check.click()
    assert "Expected a 2x2 matrix (2 rows of 2 numbers, e.g. 1 2; 3 4). Received: 1 row of 4 numbers" in q1.feedback.value
    assert FREE in q1.feedback.value and q1.first is None and "0 of 7 answered" in widget.score.value
    q1.answer.value = "10 7; 8 12"
    q1.check.click()
    assert "Correct." in q1.feedback.value and "Score: 1 / 7</b> (1 of 7 answered)" in widget.score.value


# -- nbgrader: the visible check in the student's notebook, and the instructor's test cell at autograde ----------

def cells(kind: str, quiz: str) -> dict[str, str]:
    """The test cells (grade_id -> source) of the committed source (what autograde runs) or release."""
    folder = {"source": "solutions", "release": "exercises"}[kind]
    nb = nbformat.read(REPO / folder / f"quiz_{quiz}" / f"quiz_{quiz}.ipynb", as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells
            if c.cell_type == "code" and c.metadata["nbgrader"].get("grade")}


def ran(**values):
    return Values(values=json.loads(json.dumps(values)), errors={}, failure=None, log="", isolation="test")


def test_the_released_check_catches_a_wrong_count_before_submission():
    """The student runs the visible check: a wrong count is caught in their notebook, with no answer in it."""
    visible = cells("release", "stride_padding")["q2"]  # (28, 28, 1) -> Conv2D(4, 5, 'same'): a 3-D shape
    assert "28, 28, 4" not in visible
    with pytest.raises(AnswerFormatError) as info:
        exec(visible, {"answer_2": (28, 28)})
    assert str(info.value) == ("Question 2: Expected 3 numbers (a 3-D shape, e.g. 28 28 1). Received: 2 numbers "
                               "(28 28). Fix answer_2 in the cell above, then run this cell again.")
    exec(visible, {"answer_2": (1, 2, 3)})  # well formed: the visible check cannot know more
    matrix_check = cells("release", "pooling")["q1"]
    with pytest.raises(AnswerFormatError, match=r"Expected a 2x2 matrix .*Received: 1 row of 4 numbers"):
        exec(matrix_check, {"answer_1": [10, 7, 8, 12]})
    with pytest.raises(AnswerFormatError, match=r"answer_1 has no answer yet\. Expected a list of 2 rows of 2 numbers"):
        exec(matrix_check, {"answer_1": ...})


@pytest.mark.parametrize("quiz, test, name, given", [
    ("stride_padding", "q2", "answer_2", [28, 28]),
    ("stride_padding", "q5", "answer_5", [14, 14, 64, 1]),
    ("pooling", "q1", "answer_1", [[1, 2, 3, 4]]),
    ("pooling", "q3", "answer_3", "10 7 7; 6 9 9"),
])
def test_autograde_a_wrong_count_is_an_answer_format_error(quiz, test, name, given):
    """The instructor's test cell (hidden part restored) on the student's value: AnswerFormatError, the count
    expected, the count given, and not the answer."""
    out = quiz_verdict(cells("source", quiz)[test], ran(**{name: given}))
    assert out.output_type == "error" and out.ename == "AnswerFormatError", out
    assert re.search(r"Expected (\d+ numbers|a \dx\d matrix)", out.evalue) and "Received: " in out.evalue
    answer = next(v for n, v in enumerate(make_quiz(load_bank(quiz, REPO), NBGRADER_VARIANT).variants, start=1)
                  if f"q{n}" == test).answer
    assert not any(text in out.evalue + "".join(out.traceback) for text in secret_forms(answer))


def secret_forms(answer) -> list[str]:
    """The ways an answer could appear in a message."""
    flat = [f"{x:g}" for x in np.ravel(answer).tolist()]
    rows = answer if np.ndim(answer) == 2 else [answer]
    return [", ".join(flat), " ".join(flat), "x".join(flat), repr(answer), repr(tuple(answer)) if np.ndim(answer) == 1
            else "; ".join(" ".join(f"{x:g}" for x in row) for row in rows)]


def test_autograde_verdicts_never_show_the_answer():
    source = cells("source", "pooling")["q1"]  # answer [[10, 7], [8, 12]]
    secret = secret_forms([[10, 7], [8, 12]])
    wrong = quiz_verdict(source, ran(answer_1=[[10, 7], [8, 11]]))
    assert wrong.ename == "WrongAnswer" and wrong.evalue.startswith("Question 1: not quite. Hint:")
    assert quiz_verdict(source, ran(answer_1=[[10, 7], [8, 12]])).text == "PASS\n"
    missing = quiz_verdict(source, ran())
    assert missing.ename == "AnswerFormatError" and missing.evalue == (
        "answer_1 has no value after your notebook ran: the cell that assigns it is missing, still the stub, or "
        "raised an error. Expected a list of 2 rows of 2 numbers, e.g. [[1, 2], [3, 4]].")
    # an instructor's own assert, whose text holds the answer: named, its text not shown
    own = "assert answer_1 == [[10, 7], [8, 12]], f'expected {[[10, 7], [8, 12]]}, got {answer_1}'"
    custom = quiz_verdict(own, ran(answer_1=[[1, 2], [3, 4]]))
    assert custom.ename == "AssertionError" and custom.evalue.startswith("answer_1: not right")
    # the same, with answer_check's format known from the cell
    mixed = quiz_verdict(source + "\n" + own, ran(answer_1=[[10, 7], [8, 12.5]]))
    assert mixed.ename == "WrongAnswer"
    mixed = quiz_verdict(source.replace("### BEGIN HIDDEN TESTS", own + "\n### BEGIN HIDDEN TESTS"),
                         ran(answer_1=[[1, 2], [3, 4]]))
    assert mixed.ename == "AssertionError" and mixed.evalue.endswith("Expected a list of 2 rows of 2 numbers, e.g. "
                                                                     "[[1, 2], [3, 4]].")
    unreadable = Values(values={}, errors={"answer_1": "`answer_1` holds a module; expected plain data."},
                        failure=None, log="", isolation="test")
    bad = quiz_verdict(source, unreadable)
    assert bad.ename == "AnswerFormatError" and bad.evalue.endswith("Expected a list of 2 rows of 2 numbers, e.g. "
                                                                    "[[1, 2], [3, 4]].")
    for out in (wrong, missing, custom, mixed, bad):
        shown = out.evalue + "\n".join(out.traceback)
        assert not any(text in shown for text in secret), shown


def test_answer_check_messages_are_the_same_whatever_the_answer():
    """The hidden check (it knows the answer) says exactly what the visible one says about a wrong count."""
    messages = set()
    for spec in ({"answer": [7, 7, 12], "hint": "h"}, {"answer": [14, 14, 8], "hint": "h"}, None):
        with pytest.raises(AnswerFormatError) as info:
            answer_check(4, (28, 28), "shape", spec, dims=None if spec else (3,))
        messages.add(str(info.value))
    assert len(messages) == 1, messages
    with pytest.raises(WrongAnswer, match=r"^Question 4: not quite\. Hint: h$"):
        answer_check(4, (7, 7, 13), "shape", {"answer": [7, 7, 12], "hint": "h"})


@pytest.mark.slow
def test_autograde_end_to_end_a_wrong_count_scores_zero_and_says_why(tmp_path, course):
    """Through nbgrader itself: the answers run in the jail, the restored test cells run on their values."""
    from deepgrade.course import fill
    from deepgrade.demo import gradebook, nbgrader, nbgrader_config

    console = Console(quiet=True)
    (tmp_path / "nbgrader_config.py").write_text(nbgrader_config(course, profile=None, seed=None))
    nbgrader(tmp_path, "generate_assignment", "quiz_stride_padding", "--force", console=console)
    quiz = make_quiz(load_bank("stride_padding", REPO), NBGRADER_VARIANT)
    answers = {f"q{n}_answer": f"answer_{n} = {v.answer if v.kind != 'shape' else tuple(v.answer)!r}"
               for n, v in enumerate(quiz.variants, start=1)}
    answers["q2_answer"] = "answer_2 = (28, 28)"  # a 3-D shape with two numbers
    answers["q3_answer"] = "answer_3 = '14 14'"  # the same, as text
    path = tmp_path / "submitted" / "sam" / "quiz_stride_padding" / "quiz_stride_padding.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(fill(tmp_path / "exercises" / "quiz_stride_padding" / "quiz_stride_padding.ipynb", answers), path)
    nbgrader(tmp_path, "autograde", "quiz_stride_padding", "--force", console=console)
    row = gradebook(tmp_path, "quiz_stride_padding")[0]
    assert row["checks"]["q2"] == row["checks"]["q3"] == 0 and row["score"] == quiz.max_score - 2
    graded = nbformat.read(tmp_path / "autograded" / "sam" / "quiz_stride_padding" / "quiz_stride_padding.ipynb", 4)
    verdicts = {c.metadata["nbgrader"]["grade_id"]: c.outputs[0] for c in graded.cells
                if c.cell_type == "code" and c.metadata["nbgrader"].get("grade")}
    assert verdicts["q2"].ename == verdicts["q3"].ename == "AnswerFormatError"
    assert verdicts["q2"].evalue.startswith("Question 2: Expected 3 numbers (a 3-D shape, e.g. 28 28 1). "
                                            "Received: 2 numbers (28 28).")
    assert "Received: 2 numbers (14 14)" in verdicts["q3"].evalue
    for test, answer in (("q2", [28, 28, 4]), ("q3", [14, 14, 8])):
        shown = verdicts[test].evalue + "".join(verdicts[test].traceback)
        assert not any(text in shown for text in secret_forms(answer)), shown
