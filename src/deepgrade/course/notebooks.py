"""The course's notebooks: which cells are tests or answers, and a stub filled with an answer file.

A filled stub is what a student hands in; tests, the demo and calibration make them from
``tests/submissions/<exercise>/<answer>.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # nbformat is imported where a notebook is read: the grader alone (a GPU machine) needs none
    import nbformat

SKIP_TAG = "deepgrade-skip"  # cells with this tag are not run by the grader (a student's own experiments)


def is_test_cell(cell) -> bool:
    """An nbgrader autograder-test cell: graded, not a solution."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def runs_in_sandbox(cell) -> bool:
    """A code cell the student's jail runs: not an nbgrader test cell (it calls the grader), not tagged
    deepgrade-skip. The grade key of a batch is made of exactly these cells."""
    return (cell.get("cell_type") == "code" and not is_test_cell(cell)
            and SKIP_TAG not in cell.get("metadata", {}).get("tags", []))


def _answer_id(cell) -> str | None:
    """The name a student's answer goes by: a solution cell's grade_id, or the one function an editable
    cell outside nbgrader defines (e.g. ``fit_options``, released as written)."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    if cell.get("cell_type") != "code":
        return None
    if meta.get("solution"):
        return meta.get("grade_id")
    if meta:
        return None
    try:
        defs = [n.name for n in ast.parse(cell.source).body if isinstance(n, ast.FunctionDef)]
    except SyntaxError:
        return None
    return defs[0] if len(defs) == 1 else None


def fill(stub: Path, answers: dict[str, str]) -> "nbformat.NotebookNode":
    """The stub with the source of each answer cell named in ``answers`` (see :func:`_answer_id`) replaced."""
    import nbformat

    nb = nbformat.read(stub, as_version=4)
    todo = dict(answers)
    for cell in nb.cells:
        name = _answer_id(cell)
        if name in todo:
            cell.source = todo.pop(name)
    if todo:
        raise KeyError(f"{stub}: no solution cell with grade_id {sorted(todo)}")
    return nb


def solution_ids(nb) -> list[str]:
    return [name for c in nb.cells if (name := _answer_id(c))]


def split_answers(source: str, grade_ids: list[str]) -> dict[str, str]:
    """Split an answer file into solution cells: each top-level ``def NAME`` goes to the cell with grade_id NAME.

    Lines before the first such function (comments, imports, helpers) go with the first one.
    """
    lines = source.splitlines(keepends=True)
    starts = [(node.lineno - 1 - len(node.decorator_list), node.name) for node in ast.parse(source).body
              if isinstance(node, ast.FunctionDef) and node.name in grade_ids]
    if not starts:
        return {grade_ids[0]: source}
    answers = {}
    for i, (start, name) in enumerate(starts):
        begin = 0 if i == 0 else start
        end = starts[i + 1][0] if i + 1 < len(starts) else len(lines)
        answers[name] = "".join(lines[begin:end]).strip() + "\n"
    return answers


def write_submission(stub: Path, answer_file: Path, out: Path) -> Path:
    """Write ``stub`` filled with the code in ``answer_file`` (split by function, see split_answers) to ``out``."""
    import nbformat

    nb = nbformat.read(stub, as_version=4)
    nb = fill(stub, split_answers(Path(answer_file).read_text(), solution_ids(nb)))
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)
    return out
