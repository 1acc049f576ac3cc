"""The test cells a student runs in Jupyter: the solution passes them in a real kernel, a wrong model fails them."""

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import REPO

pytestmark = pytest.mark.slow  # every test runs a notebook in a real kernel, and most train


@pytest.fixture(autouse=True)
def fixed_seed(monkeypatch):
    """The kernels inherit $DEEPGRADE_SEED: their check cells train under seed 1, like the other tests."""
    monkeypatch.setenv("DEEPGRADE_SEED", "1")


def run(nb, folder):
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()


def text(cell) -> str:
    """Everything a cell shows as text: printed lines and the text of displayed verdicts."""
    return "".join(o.get("text", "") if o.output_type == "stream" else o.get("data", {}).get("text/plain", "")
                   for o in cell.outputs if o.output_type in ("stream", "display_data", "execute_result"))


def html(cell) -> str:
    return "".join(o.get("data", {}).get("text/html", "") for o in cell.outputs if o.output_type == "display_data")


def cell(nb, grade_id):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def errors(nb) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]


def test_solution_notebook_passes_its_own_test_cells():
    nb = nbformat.read(REPO / "solutions" / "mlp" / "mlp.ipynb", as_version=4)
    run(nb, REPO / "solutions" / "mlp")
    tests = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert [text(c).split(" (")[0] for c in tests] == ["PASS architecture", "PASS parameters", "PASS accuracy"]
    assert not errors(nb)
    imports = cell(nb, "imports")
    assert not [o for o in imports.outputs if o.output_type == "stream" and o.name == "stderr"], imports.outputs  # no TF log
    assert "seed" not in text(cell(nb, "architecture")) and "seed" not in text(cell(nb, "parameters"))
    assert "trained with seed 1" in text(cell(nb, "accuracy"))  # the seed only where it matters: it trained
    shown = html(cell(nb, "accuracy"))
    assert shown.count("<img src='data:image/png;base64,") == 3 and "dg-pass" in shown  # curves, confusion, per class
    assert "<img" not in html(cell(nb, "architecture"))


def test_a_wrong_model_fails_every_check_cell_and_run_all_goes_on(make_submission):
    """A failing check shows a FAIL verdict, not a traceback, and Run All runs the cells after it. The parameters
    check points at the layer the architecture check names."""
    nb = nbformat.read(make_submission("mlp", "wrong_layer"), as_version=4)
    cell(nb, "accuracy").source = "print('Run All reached this cell')  # trained in the browser test of deepgrade lab"
    run(nb, REPO / "exercises" / "mlp")
    assert not errors(nb)
    architecture, parameters, accuracy = (text(cell(nb, n)) for n in ("architecture", "parameters", "accuracy"))
    assert architecture.startswith("FAIL architecture (0 / 2): Layer 3 (Dense 'dense_1'): expected Dropout(rate=0.4). "
                                   "Received: Dense."), architecture
    assert parameters.startswith("FAIL parameters (0 / 1): Layer 3 (Dense 'dense_1'): expected 0 parameters"), parameters
    assert accuracy == "Run All reached this cell\n"
    table = html(cell(nb, "architecture"))
    assert "dg-fail" in table and "<tr class='dg-row dg-differs'><td class='dg-num'>3</td>" in table
    assert "Dense &#x27;dense_1&#x27; (units=256, activation=&#x27;relu&#x27;) &larr; first difference" in table


def test_under_nbgrader_execution_a_failing_check_raises(monkeypatch, capsys):
    """nbgrader's own execution (validate, or an autograde without deepgrade's step) must see a failure: there,
    and only there, a FAIL verdict raises. (A check of an exercise the course lacks fails before any grading.)"""
    from deepgrade.errors import CheckFailed
    from deepgrade.notebook_checks import check

    monkeypatch.chdir(REPO)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    assert check("no_such_exercise", "architecture", lambda: None) is None
    assert capsys.readouterr().out.startswith("FAIL architecture (0 / 0): Unknown exercise: expected one of cnn, mlp")
    monkeypatch.setenv("NBGRADER_EXECUTION", "validate")
    with pytest.raises(CheckFailed, match=r"^FAIL architecture \(0 / 0\): Unknown exercise: expected one of cnn, mlp"):
        check("no_such_exercise", "architecture", lambda: None)


def test_one_grader_run_serves_every_check_cell(monkeypatch):
    """In one kernel: the first cell grades the checks that do not train, the first training check trains once
    for all of them (accuracy and gap from the same run, the same seed), every other cell comes from the cache.
    The notebook's fit_options() reaches the grader from every cell."""
    import keras
    from keras import layers

    from deepgrade import notebook_checks
    from deepgrade.grader.worker import GraderWorker

    monkeypatch.delenv("DEEPGRADE_SEED")  # a drawn seed: the same one must serve accuracy and gap
    monkeypatch.chdir(REPO / "solutions" / "regularization")
    calls = []
    real = GraderWorker.grade
    monkeypatch.setattr(GraderWorker, "grade",
                        lambda self, *a, **k: calls.append((k["train"], k["only"])) or real(self, *a, **k))
    source = nbformat.read(REPO / "solutions" / "regularization" / "regularization.ipynb", as_version=4)
    namespace = {"keras": keras, "layers": layers, "check": notebook_checks.check}
    for c in source.cells:
        if c.cell_type == "code" and c.source.startswith("def "):
            exec(c.source, namespace)
    exec('def fit_options():\n    return {"validation_split": 0.2, "early_stopping": {"monitor": "val_loss", '
         '"patience": 2}}', namespace)  # found by name by every check cell, sent to the grader as data
    shown = []
    monkeypatch.setattr(notebook_checks._Display, "done", lambda self, verdict: shown.append(verdict))
    try:
        for name in ("keeps_baseline", "accuracy", "gap", "keeps_baseline", "accuracy"):
            exec(f"check('regularization', {name!r}, build_model)", namespace)
    finally:
        notebook_checks.SESSION.close()
    assert calls == [(False, None), (True, ["accuracy", "gap"])], calls  # two grades for five cells
    seeds = {v.report.environment["seed"] for v in shown if v.result.name in ("accuracy", "gap")}
    assert len(seeds) == 1 and shown[1].report is shown[2].report is shown[4].report
    assert [v.result.name for v in shown] == ["keeps_baseline", "accuracy", "gap", "keeps_baseline", "accuracy"]
    assert "400 more held out for validation" in shown[2].result.message  # the options reached the grader


def test_cnn_cells_check_both_functions():
    """The strided checks receive build_strided_model's model, not build_model's."""
    nb = _without_try_it(nbformat.read(REPO / "solutions" / "cnn" / "cnn.ipynb", as_version=4))
    cell(nb, "accuracy").source = "pass  # trained in test_cnn.py; here only the other cells"
    run(nb, REPO / "solutions" / "cnn")
    out = _verdicts(nb)
    assert out["strided_shapes"].startswith("PASS strided_shapes") and "28x28x4 -> 14x14x8 -> 7x7x12" in out["strided_shapes"]
    assert out["strided_parameters"].startswith("PASS strided_parameters (1 / 1): 121,086 parameters")
    assert out["output_shapes"].startswith("PASS output_shapes")


def _without_try_it(nb):
    """The notebook without its "Try it" section (the student's own training: the mlp solution's runs in
    test_solution_notebook_passes_its_own_test_cells; here only the check cells matter)."""
    kept = [c for c in nb.cells if not c.get("id", "").startswith("try-it")]
    assert len(kept) < len(nb.cells), "expected the notebook's Try it section (cells try-it-N)"
    nb.cells = kept
    return nb


def _cells_without(path, skipped):
    nb = _without_try_it(nbformat.read(path, as_version=4))
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") in skipped:
            cell.source = "pass  # graded end to end in tests/test_<exercise>.py; here only the other cells"
    return nb


def _verdicts(nb) -> dict:
    return {c.metadata["nbgrader"]["grade_id"]: text(c) for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")}


def test_transfer_cells_give_the_base_to_both_functions():
    nb = _cells_without(REPO / "solutions" / "transfer" / "transfer.ipynb", {"base_frozen", "head_new", "accuracy", "gain"})
    run(nb, REPO / "solutions" / "transfer")
    out = _verdicts(nb)
    for name in ("base_used", "fine_tuning"):
        assert out[name].startswith(f"PASS {name}"), out
    assert "trained with seed 1" in out["fine_tuning"]  # the seed is shown, so a run can be reproduced
    assert "seed" not in out["base_used"]  # ... only where the check trained


def test_a_seed_that_is_not_a_number_is_refused(monkeypatch):
    from deepgrade.errors import ConfigError
    from deepgrade.notebook_checks import seed_from_environment

    monkeypatch.setenv("DEEPGRADE_SEED", "seven")
    with pytest.raises(ConfigError, match=r"DEEPGRADE_SEED: expected a whole number >= 0 .* Received: 'seven'"):
        seed_from_environment()
    monkeypatch.setenv("DEEPGRADE_SEED", " 7 ")
    assert seed_from_environment() == 7
    monkeypatch.delenv("DEEPGRADE_SEED")
    assert seed_from_environment() is None
