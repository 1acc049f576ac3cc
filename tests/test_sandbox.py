"""The sandbox: student code runs in its own process with limits; only a .keras file comes back."""

import textwrap
from pathlib import Path

import nbformat
import pytest

from deepgrade.errors import StudentCodeError
from deepgrade.sandbox import Limits, network_isolation, run_notebook

MODEL = """
import keras
def build_model():
    return keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
"""
# The same model, reading NEEDED: the cell that sets it is one grading runs (it runs only what build_model() needs).
NEEDS = MODEL.replace("keras.layers.Dense(10)", "keras.layers.Dense(10 + 0 * len(str(NEEDED)))")


def notebook(tmp_path: Path, *sources: str, tags: dict[int, list[str]] | None = None) -> Path:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    for index, cell_tags in (tags or {}).items():
        nb.cells[index].metadata["tags"] = cell_tags
    path = tmp_path / "student.ipynb"
    nbformat.write(nb, path)
    return path


def run(tmp_path, *sources, limits=Limits.of("student", time_limit_s=60, memory_limit_mb=4096), expect=None, **kw):
    """The model file build_model() produced, or the StudentCodeError saying why there is none (``expect``: a
    pattern it must match, the test passing when it does)."""
    built = run_notebook(notebook(tmp_path, *sources, **kw), ["build_model"], tmp_path / "out", limits)
    if expect is None:
        return built.model("build_model")
    with pytest.raises(StudentCodeError, match=expect):
        built.model("build_model")


def test_a_model_comes_back_as_a_keras_file(tmp_path):
    path = run(tmp_path, MODEL)
    assert path.is_file() and path == tmp_path / "out" / "build_model.keras"


def test_several_entry_functions_each_get_their_own_outcome(tmp_path):
    nb = notebook(tmp_path, MODEL, "def build_other():\n    raise ValueError('not yet')")
    built = run_notebook(nb, ["build_model", "build_other", "build_third"], tmp_path / "out")
    assert built.model("build_model").is_file()
    with pytest.raises(StudentCodeError, match=r"^build_other\(\) raised ValueError: not yet\.$"):
        built.model("build_other")
    with pytest.raises(StudentCodeError, match=r"does not define a function `build_third\(\)`"):
        built.model("build_third")


def test_environment_is_scrubbed_and_workdir_is_empty(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPGRADE_TEST_SECRET", "hunter2")
    probe = """
import os
leaked = [k for k in os.environ if "SECRET" in k or k.startswith(("AWS", "GITHUB", "DEEPGRADE")) and k != "DEEPGRADE_RESULT_FD"]
assert not leaked, leaked
assert {p for p in os.listdir(".") if not p.startswith(".")} <= {"models", "request.json", "submission.ipynb", "tmp"}, os.listdir(".")
assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
"""
    run(tmp_path, f"def probe():\n{textwrap.indent(probe, '    ')}\nNEEDED = probe()", NEEDS)


def test_tagged_cells_are_skipped(tmp_path):
    run(tmp_path, NEEDS, "NEEDED = 1\nraise RuntimeError('training demo, not graded')", tags={1: ["deepgrade-skip"]},
        expect=r"build_model\(\) raised NameError: name 'NEEDED' is not defined")


def test_a_raising_cell_that_is_needed_is_named_with_the_name_it_sets(tmp_path):
    with pytest.raises(StudentCodeError, match=(
            r"^build_model\(\) reads `NEEDED`, set in cell 2, which raised NameError: name 'undefined' is not "
            r"defined\. The grader runs this line because the graded code needs it")):
        run(tmp_path, NEEDS, "NEEDED = undefined + 1")


def test_a_raising_cell_that_is_not_needed_costs_nothing(tmp_path):
    built = run_notebook(notebook(tmp_path, MODEL, "undefined + 1", "raise NotImplementedError"), ["build_model"],
                         tmp_path / "out")
    assert built.model("build_model").is_file()
    assert built.not_run.startswith("Cells 2 and 3 not run when grading: build_model() does not need the rest")


def test_build_model_raising(tmp_path):
    with pytest.raises(StudentCodeError, match=r"^build_model\(\) raised ZeroDivisionError: division by zero"):
        run(tmp_path, "def build_model():\n    return 1 / 0")


def test_returns_none(tmp_path):
    with pytest.raises(StudentCodeError, match=r"build_model\(\) returned None; expected a Keras model\. Did you forget `return model`"):
        run(tmp_path, "def build_model():\n    pass")


def test_returns_something_else(tmp_path):
    with pytest.raises(StudentCodeError, match=r"returned a builtins\.int; expected a Keras 3 model"):
        run(tmp_path, "def build_model():\n    return 42")


def test_missing_function(tmp_path):
    with pytest.raises(StudentCodeError, match=r"does not define a function `build_model\(\)`"):
        run(tmp_path, "x = 1")


def test_infinite_loop_hits_the_time_limit(tmp_path):
    with pytest.raises(StudentCodeError, match=r"did not finish within the time limit of 5 s"):
        run(tmp_path, "def build_model():\n    while True:\n        pass",
            limits=Limits.of("student", time_limit_s=5, memory_limit_mb=4096))


def test_memory_limit(tmp_path):
    with pytest.raises(StudentCodeError, match=r"reads `NEEDED`, set in cell 1, which raised MemoryError.*"
                                               r"The sandbox allows 1024 MB"):
        run(tmp_path, "NEEDED = bytearray(3 * 2**30)", NEEDS,
            limits=Limits.of("student", time_limit_s=60, memory_limit_mb=1024))


def test_exit_is_caught(tmp_path):
    with pytest.raises(StudentCodeError, match=r"exited with code 3 before build_model\(\) returned a model"):
        run(tmp_path, "import os\nNEEDED = os._exit(3)", NEEDS)


def test_not_a_notebook(tmp_path):
    path = tmp_path / "broken.ipynb"
    path.write_text("{ this is not json")
    with pytest.raises(StudentCodeError, match=r"could not be read as a Jupyter notebook"):
        run_notebook(path, ["build_model"], tmp_path / "out").model("build_model")


def test_missing_notebook(tmp_path):
    with pytest.raises(StudentCodeError, match=r"Notebook not found"):
        run_notebook(tmp_path / "nope.ipynb", ["build_model"], tmp_path / "out").model("build_model")


@pytest.mark.skipif(not network_isolation(), reason="unshare --net is not allowed on this machine")
def test_no_network_inside_the_sandbox(tmp_path):
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    try:
        probe = f"import socket\nNEEDED = socket.create_connection(('127.0.0.1', {port}), timeout=5)"
        with pytest.raises(StudentCodeError, match=r"^build_model\(\) reads `NEEDED`, set in cell 1, which raised "
                                                   r"\w*(OSError|ConnectionRefusedError)"):
            run(tmp_path, probe, NEEDS)
    finally:
        server.close()


def test_not_done_yet_is_said_only_for_the_stubs_own_raise(tmp_path):
    helper = ("import keras\ndef layers_of():\n    raise NotImplementedError('the helper is next')\n"
              "def build_model():\n    return keras.Sequential(layers_of())")
    with pytest.raises(StudentCodeError) as info:
        run(tmp_path, helper)
    assert str(info.value) == "build_model() raised NotImplementedError: the helper is next."
    stub = "def build_model():\n    raise NotImplementedError('replace this line')"
    with pytest.raises(StudentCodeError, match=r"not done yet: replace `raise NotImplementedError\(\.\.\.\)` in "
                                               r"build_model\(\)"):
        run(tmp_path, stub)


def test_matplotlib_inline_and_cell_magics_work_in_the_jail(tmp_path):
    from deepgrade.sandbox import run_for_values

    # a quiz runs every cell: %matplotlib inline draws nowhere instead of raising NotImplementedError
    ran = run_for_values(notebook(tmp_path, "%matplotlib inline\nimport matplotlib.pyplot as plt\nplt.plot([1, 2])",
                                  "answer_1 = 4"), ["answer_1"])
    assert ran.values == {"answer_1": 4} and ran.failure is None, ran.log[-2000:]
    # an exercise: the body of a %%time cell is code, and a magic whose result is needed runs
    run(tmp_path, "%%time\nimport keras\nNEEDED = %env HOME", NEEDS.replace("import keras\n", ""))
