"""Quizzes as nbgrader assignments: answers hidden from students, autograded with points.

``write_source(quiz, folder)`` writes the nbgrader source notebook: per question
a prompt, a solution cell (``answer_3 = ...``) and a test cell whose visible
part only checks the answer's format (with its count of numbers: ``dims=``, so
a wrong count is caught before submitting) and whose hidden part (nbgrader's
``BEGIN HIDDEN TESTS``) checks the value; ``nbgrader generate_assignment``
strips the solutions and hidden tests from the release, ``nbgrader autograde``
puts the hidden tests back.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from .bank import Quiz
from .questions import AnswerFormatError, Variant, answer_dims, example_matrix, grade, parse, shape_example

NBGRADER_VARIANT = "nbgrader"  # the student id that seeds the one variant every student gets in nbgrader

FORMAT = {"int": "a whole number, e.g. 42", "float": "a number, e.g. 0.5",
          "matrix": "a list of rows, e.g. [[1, 2], [3, 4]]", "shape": "a tuple, e.g. (5, 5, 3)",
          "choice": "the text of one choice, as a string"}


class WrongAnswer(AssertionError):
    """A well-formed answer that is not right. The message names the question and gives the hint, never the answer."""


def answer_format(kind: str, dims: tuple[int, ...] = ()) -> str:
    """The Python value a question wants, with its count of numbers when known (never the answer's values)."""
    dims = tuple(dims)
    if kind == "shape" and dims:
        example = shape_example(dims[0])
        return f"a tuple of {dims[0]} whole number{'s' if dims[0] != 1 else ''}, e.g. {example!r}"
    if kind == "matrix" and dims:
        return (f"a list of {dims[0]} row{'s' if dims[0] != 1 else ''} of {dims[1]} number{'s' if dims[1] != 1 else ''}"
                f", e.g. {example_matrix(*dims)!r}")
    return FORMAT[kind]


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value

    def plain(x):
        if hasattr(x, "tolist"):  # a numpy array or scalar
            return x.tolist()
        raise TypeError
    try:
        return json.dumps(list(value) if isinstance(value, tuple) else value, default=plain)
    except (TypeError, ValueError):
        return str(value)


def answer_check(number: int, value: Any, kind: str, spec: dict | None = None, *,
                 dims: tuple[int, ...] | None = None) -> None:
    """Raise AnswerFormatError unless ``value`` is well formed (``dims``: how many numbers a shape or matrix answer
    has; from the hidden ``spec``'s answer when not given) and, given ``spec``, WrongAnswer unless it is right.
    Neither message holds the answer."""
    spec = spec or {}
    name = f"answer_{number}"
    dims = tuple(dims) if dims is not None else answer_dims(kind, spec.get("answer"))
    fix = f"Fix {name} in the cell above, then run this cell again."
    if value is None or value is ...:
        raise AnswerFormatError(f"Question {number}: {name} has no answer yet. Expected {answer_format(kind, dims)}. "
                                f"Assign {name} in the cell above, then run this cell again.")
    if kind == "choice" and not isinstance(value, str):
        raise AnswerFormatError(f"Question {number}: Expected {FORMAT[kind]}. Received: {value!r}. {fix}")
    variant = Variant(id=str(number), kind=kind, prompt="", answer=spec.get("answer"), hint=spec.get("hint", ""),
                      explanation="", choices=tuple(spec.get("choices", ())), tolerance=spec.get("tolerance", 0.0))
    if kind == "choice" and not spec:
        return  # the format is all the visible check can know
    try:
        parsed = parse(variant, value if kind == "choice" else _as_text(value), dims)
    except AnswerFormatError as exc:
        raise AnswerFormatError(f"Question {number}: {exc} {fix}") from None
    if spec and not grade(variant, parsed).correct:
        raise WrongAnswer(f"Question {number}: not quite. Hint: {variant.hint}")


def expected_formats(source: str) -> dict[str, str]:
    """For a test cell's source: each ``answer_N`` its ``answer_check`` calls name, with the format expected (the
    count of numbers at most, read from ``dims=`` or from the hidden answer; never the answer's values)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "answer_check"
                and len(node.args) >= 3 and isinstance(node.args[1], ast.Name)):
            continue
        try:
            kind = ast.literal_eval(node.args[2])
            spec = ast.literal_eval(node.args[3]) if len(node.args) > 3 else {}
            given = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg in ("dims", "spec")}
        except (ValueError, TypeError, SyntaxError, RecursionError):
            continue
        if kind not in FORMAT:
            continue
        spec = given.get("spec", spec)
        dims = given.get("dims") or (answer_dims(kind, spec.get("answer")) if isinstance(spec, dict) else ())
        if dims or node.args[1].id not in found:
            found[node.args[1].id] = answer_format(kind, tuple(dims))
    return found


def _nbg(cell, **meta):
    cell.metadata["nbgrader"] = {"schema_version": 3, **meta}
    cell.id = meta["grade_id"].replace("_", "-")  # stable ids: the same bank gives the same file
    return cell


def source_notebook(quiz: Quiz) -> nbformat.NotebookNode:
    cells = [_nbg(new_markdown_cell(
        f"# {quiz.title}: graded quiz\n\nAnswer each question by assigning `answer_N` in the cell below it, "
        "then run the cell after it: it checks that your answer is well formed and has the right count of numbers "
        "(not whether it is right). "
        "Your instructor's autograder checks the values."), grade=False, solution=False, locked=True, grade_id="intro")]
    for number, v in enumerate(quiz.variants, start=1):
        choices = "".join(f"\n- `{c!r}`" for c in v.choices)
        cells.append(_nbg(new_markdown_cell(f"**Question {number}** ({v.points:g} point{'s' if v.points != 1 else ''})\n\n"
                                            f"```\n{v.prompt}\n```{choices}\n\nAnswer with {answer_format(v.kind, v.dims)}."),
                          grade=False, solution=False, locked=True, grade_id=f"q{number}_prompt"))
        answer = v.answer if v.kind != "shape" else tuple(v.answer)
        cells.append(_nbg(new_code_cell(f"### BEGIN SOLUTION\nanswer_{number} = {answer!r}\n### END SOLUTION"),
                          grade=False, solution=True, locked=False, grade_id=f"q{number}_answer"))
        spec = {"answer": v.answer, "tolerance": v.tolerance, "choices": list(v.choices), "hint": v.hint}
        cells.append(_nbg(new_code_cell(
            "from deepgrade.quiz import answer_check\n"
            f"answer_check({number}, answer_{number}, {v.kind!r}{f', dims={v.dims!r}' if v.dims else ''})\n"
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
