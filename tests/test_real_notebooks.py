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

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import REPO, real_expectation, real_notebook
from deepgrade.cli import main
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
def test_a_real_notebook_earns_full_marks_through_deepgrade_check(exercise, course, tmp_path, capsys):
    notebook = real_notebook(course, exercise, tmp_path / f"{exercise}.ipynb")
    code = main(["check", exercise, str(notebook), "--json", "--profile", "smoke", "--seed", str(SEED),
                 "--course", str(REPO)])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["score"] == report["max_score"], [c["message"] for c in report["checks"]]
    said = report["environment"]["notebook"]
    # the cells of training, plots, magics and Colab lines were not run, and the report says so in one line
    assert " not run " in said["not_run"] and "\n" not in said["not_run"], said
    assert said.get("notes", []) == []


def test_a_needed_cell_that_fails_names_the_function_the_name_the_cell_and_the_error(course, tmp_path, capsys):
    notebook = real_notebook(course, "mlp_needs_colab", tmp_path / "mlp.ipynb")
    code = main(["check", "mlp", str(notebook), "--json", "--profile", "smoke", "--seed", str(SEED),
                 "--course", str(REPO)])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["score"] == 0
    for check in report["checks"]:
        assert check["message"].startswith(real_expectation("mlp_needs_colab")), check["message"]
        assert "not done yet" not in check["message"]


def test_real_notebooks_earn_full_marks_through_nbgrader_and_equal_answers_train_once(course, tmp_path):
    """One nbgrader course: dana hands in the real notebook of every exercise; erin hands in dana's MLP with
    other experiments of her own. nbgrader's gradebook records full marks for both, and erin's grade is dana's,
    taken from the store by what was built, not trained again."""
    out = fresh_course_folder(course, tmp_path / "course", profile="smoke", seed=SEED)

    def nbgrader(*args):
        proc = subprocess.run([NBGRADER, *args], cwd=out, env=tool_env(), capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc.stdout + proc.stderr

    for exercise in EXERCISES:
        nbgrader("generate_assignment", exercise, "--force")
        stub = f"{exercise}.ipynb"
        real_notebook(course, exercise, out / "submitted" / "dana" / exercise / stub)
    erin = real_notebook(course, "mlp", out / "submitted" / "erin" / "mlp" / "mlp.ipynb",
                         extra=["%%time\nhistory = build_model().fit(x_train, y_train_1h, epochs=30)",
                                "!ls -la\nprint('done')"])
    assert nbformat.read(erin, as_version=4).cells != nbformat.read(
        out / "submitted" / "dana" / "mlp" / "mlp.ipynb", as_version=4).cells
    for exercise in EXERCISES:
        nbgrader("autograde", exercise, "--force")
        rows = {row["student"]: row for row in gradebook(out, exercise)}
        for student in rows:
            assert rows[student]["score"] == rows[student]["max_score"] > 0, (exercise, rows[student])
    dana = json.loads((out / "autograded" / "dana" / "mlp" / "mlp.deepgrade.json").read_text())
    erin = json.loads((out / "autograded" / "erin" / "mlp" / "mlp.deepgrade.json").read_text())
    assert not dana["environment"].get("reused_grade") and erin["environment"]["reused_grade"]
    assert erin["checks"] == dana["checks"]
    assert erin["environment"]["notebook"]["not_run"] != dana["environment"]["notebook"]["not_run"]
