"""Make a filled-in notebook from a stub: what a student hands in, for tests, demos and calibration."""

from __future__ import annotations

from pathlib import Path

import nbformat


def is_test_cell(cell) -> bool:
    """An nbgrader autograder-test cell: graded, not a solution."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def fill(stub: Path, answers: dict[str, str]) -> nbformat.NotebookNode:
    """The stub with the source of each solution cell named in ``answers`` (by grade_id) replaced."""
    nb = nbformat.read(stub, as_version=4)
    todo = dict(answers)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution") and grade_id in todo:
            cell.source = todo.pop(grade_id)
    if todo:
        raise KeyError(f"{stub}: no solution cell with grade_id {sorted(todo)}")
    return nb


def write_submission(stub: Path, answer_file: Path, out: Path, grade_id: str = "build_model") -> Path:
    """Write ``stub`` filled with the code in ``answer_file`` to ``out``."""
    nb = fill(stub, {grade_id: Path(answer_file).read_text()})
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)
    return out
