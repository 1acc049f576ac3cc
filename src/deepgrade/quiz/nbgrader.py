"""Quizzes as nbgrader assignments: answers hidden from students, autograded with points.

``write_source(quiz, folder)`` writes the nbgrader source notebook: per question
a prompt, a solution cell (``answer_3 = ...``) and a test cell whose visible
part only checks the answer's format and whose hidden part (nbgrader's
``BEGIN HIDDEN TESTS``) checks the value; ``nbgrader generate_assignment``
strips the solutions and hidden tests from the release, ``nbgrader autograde``
puts the hidden tests back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from .bank import Quiz
from .questions import AnswerFormatError, Variant, grade, parse

NBGRADER_VARIANT = "nbgrader"  # the student id that seeds the one variant every student gets in nbgrader

FORMAT = {"int": "a whole number, e.g. 42", "float": "a number, e.g. 0.5",
          "matrix": "a list of rows, e.g. [[1, 2], [3, 4]]", "shape": "a tuple, e.g. (5, 5, 3)",
          "choice": "the text of one choice, as a string"}


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value if not isinstance(value, tuple) else list(value))


def answer_check(number: int, value: Any, kind: str, spec: dict | None = None) -> None:
    """Raise AssertionError unless ``value`` is well formed and, given the hidden ``spec``, right."""
    if value is None or value is ...:
        raise AssertionError(f"Question {number}: no answer yet. Expected {FORMAT[kind]}.")
    if kind == "choice" and not isinstance(value, str):
        raise AssertionError(f"Question {number}: expected {FORMAT[kind]}. Received: {value!r}.")
    spec = spec or {}
    variant = Variant(id=str(number), kind=kind, prompt="", answer=spec.get("answer"), hint=spec.get("hint", ""),
                      explanation="", choices=tuple(spec.get("choices", ())), tolerance=spec.get("tolerance", 0.0))
    if kind == "choice" and not spec:
        return  # the format is all the visible check can know
    try:
        parsed = parse(variant, value if kind == "choice" else _as_text(value))
    except AnswerFormatError as exc:
        raise AssertionError(f"Question {number}: {exc}") from None
    if spec and not grade(variant, parsed).correct:
        raise AssertionError(f"Question {number}: not quite. Hint: {variant.hint}")


def _nbg(cell, **meta):
    cell.metadata["nbgrader"] = {"schema_version": 3, **meta}
    cell.id = meta["grade_id"].replace("_", "-")  # stable ids: the same bank gives the same file
    return cell


def source_notebook(quiz: Quiz) -> nbformat.NotebookNode:
    cells = [_nbg(new_markdown_cell(
        f"# {quiz.title}: graded quiz\n\nAnswer each question by assigning `answer_N` in the cell below it, "
        "then run the cell after it: it checks that your answer is well formed (not whether it is right). "
        "Your instructor's autograder checks the values."), grade=False, solution=False, locked=True, grade_id="intro")]
    for number, v in enumerate(quiz.variants, start=1):
        choices = "".join(f"\n- `{c!r}`" for c in v.choices)
        cells.append(_nbg(new_markdown_cell(f"**Question {number}** ({v.points:g} point{'s' if v.points != 1 else ''})\n\n"
                                            f"```\n{v.prompt}\n```{choices}\n\nAnswer with {FORMAT[v.kind]}."),
                          grade=False, solution=False, locked=True, grade_id=f"q{number}_prompt"))
        answer = v.answer if v.kind != "shape" else tuple(v.answer)
        cells.append(_nbg(new_code_cell(f"### BEGIN SOLUTION\nanswer_{number} = {answer!r}\n### END SOLUTION"),
                          grade=False, solution=True, locked=False, grade_id=f"q{number}_answer"))
        spec = {"answer": v.answer, "tolerance": v.tolerance, "choices": list(v.choices), "hint": v.hint}
        cells.append(_nbg(new_code_cell(
            "from deepgrade.quiz import answer_check\n"
            f"answer_check({number}, answer_{number}, {v.kind!r})\n"
            "### BEGIN HIDDEN TESTS\n"
            f"answer_check({number}, answer_{number}, {v.kind!r}, {spec!r})\n"
            "### END HIDDEN TESTS"),
            grade=True, solution=False, locked=True, grade_id=f"q{number}", points=v.points))
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["deepgrade"] = {"quiz": quiz.name, "variant_of": quiz.student, "seed": quiz.seed}
    return nb


def assignment_name(quiz_name: str) -> str:
    return f"quiz_{quiz_name}"


def write_source(quiz: Quiz, solutions: Path) -> Path:
    """Write solutions/quiz_<name>/quiz_<name>.ipynb (the nbgrader source)."""
    name = assignment_name(quiz.name)
    path = Path(solutions) / name / f"{name}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nb = source_notebook(quiz)
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return path
