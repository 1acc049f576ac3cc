"""Notebooks as students write them (``tests/real_notebooks/``) grade like the bare answer.

Each notebook holds a correct answer amid what a course teaches and Colab adds: magics, shell and Colab lines,
the data loaded with the stock loader (read-only in the student's jail), globals computed from it, one-hot
labels and a categorical loss, helpers and constants in other cells (one changed in a later cell), a star
import, ten epochs of training on all 60,000 images, TensorBoard, plots, ``.h5`` saves, and a cell that fails
and is not needed. Grading runs only what the graded functions need (``deepgrade.sandbox.slicing``), so each
earns full marks through ``deepgrade check`` and through ``nbgrader autograde``, and says which cells it did
not run. A needed cell that fails names the function, the name, the cell and the error.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import REPO, generate_assignments, real_expectation, real_notebook
from deepgrade.demo import fresh_course_folder, gradebook, tool_env

EXERCISES = ["mlp", "cnn", "rnn", "regularization", "transfer"]
NBGRADER = str(Path(sys.executable).parent / "nbgrader")
SEED = 1

pytestmark = pytest.mark.slow


def test_every_exercise_has_a_real_notebook_and_each_says_what_it_expects():
    names = sorted(p.stem for p in (REPO / "tests" / "real_notebooks").glob("*.ipy"))
    assert {name.split("_")[0] for name in names} == set(EXERCISES)
    for name in names:
        assert real_expectation(name)


@pytest.mark.parametrize("exercise", EXERCISES)
def test_a_real_notebook_earns_full_marks_through_deepgrade_checks_library_call(exercise, graded):
    report = graded(exercise, f"real:{exercise}", seed=SEED)
    assert report.passed, [c.message for c in report.checks if not c.passed]
    said = report.environment["notebook"]
    # the cells of training, plots, magics and Colab lines were not run, and the report says so in one line
    assert " not run " in said["not_run"] and "\n" not in said["not_run"], said
    assert said.get("notes", []) == []


def test_every_feedback_says_in_one_line_which_cells_did_not_run(course, graded, tmp_path):
    """The check table (`deepgrade check`), the feedback page and the nbgrader test cells say it, and the cells
    it names include the one that trained for 10 epochs."""
    from rich.console import Console

    from deepgrade.cli import render
    from deepgrade.feedback.html import report_html
    from deepgrade.nbgrader_ext import fill_test_cells

    report = graded("mlp", "real:mlp", seed=SEED)
    line = report.notebook_notes()[0]
    console = Console(record=True, width=400)
    render(report, console)
    assert line in console.export_text()
    assert html.escape(line, quote=True) in report_html(report)
    notebook = real_notebook(course, "mlp", tmp_path / "mlp.ipynb")
    nb = nbformat.read(notebook, as_version=4)
    fill_test_cells(nb, report)
    first = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade"))
    assert any(line in o.get("text", "") for o in first.outputs), first.outputs
    trained_in = [n for n, cell in enumerate(nb.cells, 1) if "model.fit(" in cell.source and "def " not in cell.source]
    said = re.fullmatch(r"Cells ([-\d, and]+) not run and cells [-\d, and]+ run in part when grading: build_model\(\) "
                        r"does not need the rest \(your experiments, training, plots, magics and shell lines\); the "
                        r"grader trains the model itself\.", line)
    assert said, line
    listed = {n for part in re.split(r", | and ", said[1]) for n in
              (range(int(part.split("-")[0]), int(part.split("-")[1]) + 1) if "-" in part else [int(part)])}
    assert trained_in and set(trained_in) <= listed, (trained_in, line)


def test_a_needed_cell_that_fails_names_the_function_the_name_the_cell_and_the_error(graded):
    report = graded("mlp", "real:mlp_needs_colab", seed=SEED)
    assert report.score == 0
    for check in report.checks:
        assert check.message.startswith(real_expectation("mlp_needs_colab")), check.message
        assert "not done yet" not in check.message


def test_real_notebooks_earn_full_marks_through_nbgrader_and_equal_answers_train_once(course, graded, tmp_path):
    """One nbgrader course: dana hands in the real notebook of every exercise; erin hands in dana's MLP with
    other experiments of her own. nbgrader autograde runs each notebook in the student's jail (what the graded
    functions need) and records full marks for both.

    Grades are kept by what was built (the code that ran, the models' configs): of dana's and erin's MLPs, one is
    trained and the other takes its grade. The same holds across paths: the other exercises' real notebooks were graded by
    `deepgrade check`'s library call (``graded``, same seed and profile), and nbgrader takes those grades from
    the store once its own jail has built the same models; the MLP is trained by nbgrader itself."""
    out = fresh_course_folder(course, tmp_path / "course", profile="smoke", seed=SEED)

    def nbgrader(*args):
        proc = subprocess.run([NBGRADER, *args], cwd=out, env=tool_env(), capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    generate_assignments(out, EXERCISES)
    for exercise in EXERCISES:
        real_notebook(course, exercise, out / "submitted" / "dana" / exercise / f"{exercise}.ipynb")
    real_notebook(course, "mlp", out / "submitted" / "erin" / "mlp" / "mlp.ipynb",
                  extra=["%%time\nhistory = build_model().fit(x_train, y_train_1h, epochs=30)",
                         "!ls -la\nprint('done')"])
    reports = {}
    for exercise in EXERCISES:
        if exercise != "mlp":
            reports[exercise] = graded(exercise, f"real:{exercise}", seed=SEED)
            shutil.copytree(graded.store, out / ".deepgrade" / "grades", dirs_exist_ok=True)
        nbgrader("autograde", exercise, "--force")
        rows = {row["student"]: row for row in gradebook(out, exercise)}
        assert set(rows) == ({"dana", "erin"} if exercise == "mlp" else {"dana"})
        for student, row in rows.items():
            assert row["score"] == row["max_score"] > 0, (exercise, student, row)
    recorded = {exercise: json.loads((out / "autograded" / "dana" / exercise / f"{exercise}.deepgrade.json").read_text())
                for exercise in EXERCISES}
    erin = json.loads((out / "autograded" / "erin" / "mlp" / "mlp.deepgrade.json").read_text())
    # nbgrader trained one of the two MLPs itself (the first it graded); the other took that grade
    assert sorted(bool(r["environment"].get("reused_grade")) for r in (erin, recorded["mlp"])) == [False, True]
    assert erin["checks"] == recorded["mlp"]["checks"]
    assert erin["environment"]["notebook"]["not_run"] != recorded["mlp"]["environment"]["notebook"]["not_run"]
    for exercise, report in reports.items():
        assert recorded[exercise]["environment"].get("reused_grade"), exercise
        assert recorded[exercise]["checks"] == [c.model_dump(mode="json", exclude_none=True) for c in report.checks]
