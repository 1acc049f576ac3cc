"""The test cells a student runs in Jupyter: the solution passes them in a real kernel, a wrong model fails them."""

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from conftest import REPO

pytestmark = pytest.mark.slow  # every test runs a notebook in a real kernel, and most train


@pytest.fixture(autouse=True)
def fixed_seed(monkeypatch):
    """The kernels inherit $DEEPGRADE_SEED: their check cells train under seed 1, like the other tests."""
    monkeypatch.setenv("DEEPGRADE_SEED", "1")


def run(nb, folder):
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()


def stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


def test_solution_notebook_passes_its_own_test_cells():
    nb = nbformat.read(REPO / "solutions" / "mlp" / "mlp.ipynb", as_version=4)
    run(nb, REPO / "solutions" / "mlp")
    tests = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert [stdout(c).split(" (")[0] for c in tests] == ["PASS architecture", "PASS parameters", "PASS accuracy"]
    assert not any(o.output_type == "error" for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_a_wrong_model_fails_the_architecture_cell(make_submission):
    nb = nbformat.read(make_submission("mlp", "no_dropout"), as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "accuracy":
            cell.source = "pass  # not trained here: this test is about the architecture cell"
    with pytest.raises(CellExecutionError) as info:
        run(nb, REPO / "exercises" / "mlp")
    assert "CheckFailed" in str(info.value) and "expected Dropout(rate=0.4). Received: Dense." in str(info.value)


def test_cnn_cells_check_both_functions():
    """The strided checks receive build_strided_model's model, not build_model's."""
    nb = nbformat.read(REPO / "solutions" / "cnn" / "cnn.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "accuracy":
            cell.source = "pass  # trained in test_cnn.py; here only the other cells"
    run(nb, REPO / "solutions" / "cnn")
    out = {c.metadata["nbgrader"]["grade_id"]: stdout(c) for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")}
    assert out["strided_shapes"].startswith("PASS strided_shapes") and "28x28x4 -> 14x14x8 -> 7x7x12" in out["strided_shapes"]
    assert out["strided_parameters"].startswith("PASS strided_parameters (1 / 1): 121,086 parameters")
    assert out["output_shapes"].startswith("PASS output_shapes")


def _cells_without(path, skipped):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") in skipped:
            cell.source = "pass  # graded end to end in tests/test_<exercise>.py; here only the other cells"
    return nb


def _verdicts(nb) -> dict:
    return {c.metadata["nbgrader"]["grade_id"]: stdout(c) for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")}


def test_regularization_cells_send_fit_options_to_the_grader():
    nb = _cells_without(REPO / "solutions" / "regularization" / "regularization.ipynb", {"keeps_baseline", "accuracy"})
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.startswith("def fit_options"):
            cell.source = ('def fit_options():\n    return {"validation_split": 0.2, "early_stopping": '
                           '{"monitor": "val_loss", "patience": 2}}')
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "gap":  # pass or fail, the verdict is printed
            cell.source = cell.source.replace("check(", "try:\n    check(") + "\nexcept Exception as exc:\n    print(exc)"
    run(nb, REPO / "solutions" / "regularization")
    assert "400 more held out for validation" in _verdicts(nb)["gap"]  # the options reached the grader


def test_transfer_cells_give_the_base_to_both_functions():
    nb = _cells_without(REPO / "solutions" / "transfer" / "transfer.ipynb", {"base_frozen", "head_new", "accuracy", "gain"})
    run(nb, REPO / "solutions" / "transfer")
    out = _verdicts(nb)
    for name in ("base_used", "fine_tuning"):
        assert out[name].startswith(f"PASS {name}"), out
    assert out["fine_tuning"].rstrip().endswith("[seed 1]")  # the seed is shown, so a run can be reproduced


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
