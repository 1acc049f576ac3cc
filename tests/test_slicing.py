"""What of a notebook grading runs (``deepgrade.sandbox.slicing``): the statements the graded functions need,
read the way IPython reads cells, and nothing else; where the analysis cannot be sure, more, never less.

Fast: source text only, nothing of the student's runs (the jail runs it: tests/test_real_notebooks.py).
"""

from __future__ import annotations

import pytest

from deepgrade.sandbox.slicing import plan, python_of


def ran(*cells: str, targets=("build_model",), optional=("fit_options",)) -> list[str]:
    """The statements that run, as ``"cell:first line"``."""
    p = plan(list(enumerate(cells, 1)), list(targets), tuple(optional))
    return [f"{s.cell}:{s.source.strip().splitlines()[0]}" for s in p.statements()]


MODEL = "def build_model():\n    return keras.Sequential([layers.Dense(UNITS)])"


def test_only_what_build_model_reads_runs():
    assert ran("import keras\nfrom keras import layers\nimport matplotlib.pyplot as plt",
               "UNITS = 128",
               MODEL,
               "model = build_model()\nmodel.compile('adam', 'sparse_categorical_crossentropy')\n"
               "history = model.fit(x_train, y_train, epochs=10)",
               "plt.plot(history.history['loss'])\nplt.show()") == [
        "1:import keras", "1:from keras import layers", "2:UNITS = 128", "3:def build_model():"]


def test_a_constant_changed_in_a_later_cell_is_the_value_it_reads():
    # the grader calls build_model() after the last cell: the later value counts, and the earlier one is dead
    assert ran("import keras\nfrom keras import layers", "UNITS = 128", MODEL, "UNITS = 256") == [
        "1:import keras", "1:from keras import layers", "3:def build_model():", "4:UNITS = 256"]


def test_globals_computed_from_the_data_pull_in_the_data():
    assert ran("import keras\nfrom keras import layers\nimport numpy as np",
               "(x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()\n"
               "x_train = x_train[..., None] / 255.0\nprint(x_train.shape)\nnum_classes = len(np.unique(y_train))",
               "def build_model():\n    return keras.Sequential([keras.Input(x_train.shape[1:]), layers.Flatten(),"
               " layers.Dense(num_classes)])") == [
        "1:import keras", "1:from keras import layers", "1:import numpy as np",
        "2:(x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()",
        "2:x_train = x_train[..., None] / 255.0", "2:num_classes = len(np.unique(y_train))",
        "3:def build_model():"]


def test_magics_shell_and_colab_lines_do_not_run():
    assert ran("%matplotlib inline\n!pip install -q tensorflow\n%load_ext tensorboard\nimport keras",
               "from google.colab import drive\ndrive.mount('/content/drive')",
               "%tensorboard --logdir logs",
               "UNITS = 64\n" + MODEL.replace("layers.Dense", "keras.layers.Dense")) == [
        "1:import keras", "4:UNITS = 64", "4:def build_model():"]


def test_the_body_of_a_cell_magic_is_code():
    assert python_of("%%time\nx = 1\n%timeit f()")[1] == "time"
    assert ran("%%time\nimport keras\nfrom keras import layers\nUNITS = 8\nhistory = keras.Model().fit()",
               MODEL) == ["1:import keras", "1:from keras import layers", "1:UNITS = 8", "2:def build_model():"]
    # a cell magic whose body is not Python (%%bash) is not code: nothing of it runs, and nothing breaks
    p = plan([(1, "%%bash\nls -la | grep x"), (2, "import keras\nfrom keras import layers\nUNITS = 1"), (3, MODEL)],
             ["build_model"])
    assert p.cells[0].problem == "the body of the cell magic %%bash is not Python" or p.cells[0].problem.startswith(
        "SyntaxError")
    assert "cell 1 is not valid Python" in p.summary()


def test_a_name_assigned_from_a_magic_runs_the_magic():
    # IPython's own reading: `files = !ls` is an assignment of a call: it runs when `files` is needed
    assert ran("files = !ls\nimport keras", "def build_model():\n    return keras.Sequential(files)") == [
        "1:files = get_ipython().getoutput('ls')", "1:import keras", "2:def build_model():"]


def test_helpers_decorators_defaults_and_classes_are_followed():
    assert ran("import keras\nRATE = 0.3\nSIZE = 7\nUNUSED = 1",
               "def block(units, rate=RATE):\n    return [keras.layers.Dense(units), keras.layers.Dropout(rate)]",
               "class Config:\n    units = SIZE",
               "def build_model():\n    return keras.Sequential(block(Config.units))") == [
        "1:import keras", "1:RATE = 0.3", "1:SIZE = 7", "2:def block(units, rate=RATE):", "3:class Config:",
        "4:def build_model():"]


def test_an_object_changed_in_place_runs_what_changes_it():
    assert ran("import keras\nSIZES = [64]\nSIZES.append(32)\nSIZES.sort()\nprint(SIZES)\nCONFIG = {}",
               "CONFIG['units'] = 10\nCONFIG.get('units')",
               "def build_model():\n    return keras.Sequential([keras.layers.Dense(n) for n in SIZES + [CONFIG['units']]])"
               ) == ["1:import keras", "1:SIZES = [64]", "1:SIZES.append(32)", "1:SIZES.sort()", "1:CONFIG = {}",
                     "2:CONFIG['units'] = 10", "3:def build_model():"]


def test_a_model_built_at_top_level_keeps_its_compile_but_not_its_training():
    # fit, evaluate, summary and save leave alone what is graded (layers, compile settings); compile does not
    assert ran("import keras\nmodel = keras.Sequential([keras.layers.Dense(10)])\n"
               "model.compile(optimizer='adam', loss='sparse_categorical_crossentropy')\nmodel.summary()\n"
               "model.fit(x, y, epochs=100)\nmodel.evaluate(x, y)\nmodel.save('my_model.h5')",
               "def build_model():\n    return model") == [
        "1:import keras", "1:model = keras.Sequential([keras.layers.Dense(10)])",
        "1:model.compile(optimizer='adam', loss='sparse_categorical_crossentropy')", "2:def build_model():"]


def test_a_global_set_through_a_call_runs_the_call():
    assert ran("import keras",
               "def setup():\n    global UNITS\n    UNITS = 32",
               "setup()\nprint('ready')",
               "def build_model():\n    return keras.Sequential([keras.layers.Dense(UNITS)])") == [
        "1:import keras", "2:def setup():", "3:setup()", "4:def build_model():"]


@pytest.mark.parametrize("opaque", [
    "from keras.layers import *",
    "exec('UNITS = 3')",
    "globals()['UNITS'] = 3",
    "for name, value in [('UNITS', 3)]:\n    vars()[name] = value",
])
def test_where_names_cannot_be_seen_more_runs(opaque):
    p = plan([(1, "import keras\nUNITS = 8"), (2, opaque), (3, "print('done')"),
              (4, "def build_model():\n    return keras.Sequential([Dense(UNITS)])")], ["build_model"])
    statements = {s.cell: s for s in p.statements()}
    assert sorted(statements) == [1, 2, 4]
    assert any(need.maybe for need in p.needed_by(statements[2]))  # its error would be a note, not a failure


def test_a_needed_function_that_reads_names_no_one_can_see_has_every_statement_run():
    p = plan([(1, "import keras\nUNITS = 8"), (2, "print('unrelated')"),
              (3, "def build_model():\n    return keras.Sequential([keras.layers.Dense(globals()['UNITS'])])")],
             ["build_model"])
    assert [s.cell for s in p.statements()] == [1, 1, 2, 3]
    assert all(need.maybe for need in p.needed_by(p.statements()[2]))


def test_library_state_set_before_the_model_is_built_runs_and_is_optional():
    p = plan([(1, "import keras\nimport tensorflow as tf\nimport matplotlib.pyplot as plt"),
              (2, "keras.config.set_floatx('float32')\ntf.random.set_seed(0)\nplt.style.use('ggplot')"),
              (3, "def build_model():\n    return keras.Sequential([keras.layers.Dense(10)])")], ["build_model"])
    sources = [s.source.strip() for s in p.statements()]
    assert sources == ["import keras", "keras.config.set_floatx('float32')", "def build_model():\n    return "
                       "keras.Sequential([keras.layers.Dense(10)])"]
    assert all(need.maybe for need in p.needed_by(p.statements()[1]))


def test_a_library_patched_through_an_alias_runs_and_is_optional():
    p = plan([(1, "import keras\nimport keras as k\nimport numpy as np"),
              (2, "k.Model.count_params = lambda self: 269322\nnp.set_printoptions(precision=3)"),
              (3, "def build_model():\n    return keras.Sequential([keras.layers.Dense(10)])")], ["build_model"])
    patch = next(s for s in p.statements() if s.cell == 2)
    assert patch.source.startswith("k.Model.count_params") and all(n.maybe for n in p.needed_by(patch))
    assert [s.source.strip() for s in p.statements() if s.cell == 1] == ["import keras", "import keras as k"]


def test_each_entry_and_the_options_function_get_their_own_needs():
    p = plan([(1, "import keras\nA = 1\nB = 2\nPATIENCE = 3"),
              (2, "def build_model():\n    return keras.Sequential([keras.layers.Dense(A)])"),
              (3, "def build_strided_model():\n    return keras.Sequential([keras.layers.Dense(B)])"),
              (4, "def fit_options():\n    return {'early_stopping': {'patience': PATIENCE}}")],
             ["build_model", "build_strided_model"], ("fit_options",))
    by = {s.source.strip().splitlines()[0]: sorted({n.target for n in p.needed_by(s)}) for s in p.statements()}
    assert by == {"import keras": ["build_model", "build_strided_model"], "A = 1": ["build_model"],
                  "B = 2": ["build_strided_model"], "PATIENCE = 3": ["fit_options"],
                  "def build_model():": ["build_model"], "def build_strided_model():": ["build_strided_model"],
                  "def fit_options():": ["fit_options"]}


def test_why_a_statement_runs_is_the_chain_of_names():
    p = plan([(1, "import keras"), (2, "(x, y), _ = keras.datasets.fashion_mnist.load_data()"),
              (3, "num_classes = int(y.max()) + 1"),
              (4, "def build_model():\n    return keras.Sequential([keras.layers.Dense(num_classes)])")],
             ["build_model"])
    load = p.statements()[1]
    assert p.needed_by(load)[0].path == ("build_model", "num_classes", "y")


def test_the_summary_names_the_cells_not_run_in_one_line():
    p = plan([(2, "import keras\nimport numpy as np"), (3, "x = 1"), (4, "print(x)"), (5, "y = 2"),
              (7, "def build_model():\n    return keras.Sequential()"), (9, "%matplotlib inline"), (10, "z = (")],
             ["build_model"])
    assert p.summary() == (
        "Cells 3-5, 9 and 10 not run and cell 2 run in part when grading: build_model() does not need the rest "
        "(your experiments, training, plots, magics and shell lines); the grader trains the model itself; cell 10 "
        "is not valid Python (SyntaxError: '(' was never closed (line 1)).")
    assert "\n" not in p.summary()
    every = plan([(1, "import keras"), (2, "def build_model():\n    return keras.Sequential()")], ["build_model"])
    assert every.summary() == "Every code cell ran: build_model() needs all of them."


def test_code_is_what_runs_so_experiments_do_not_change_it():
    answer = ["import keras", "UNITS = 3", "def build_model():\n    return keras.Sequential([keras.layers.Dense(UNITS)])"]
    bare = plan(list(enumerate(answer, 1)), ["build_model"]).code()
    busy = plan(list(enumerate(["%matplotlib inline", *answer, "model = build_model()\nmodel.fit(x, y)",
                                "print('done')"], 1)), ["build_model"]).code()
    assert bare == busy
    other = plan(list(enumerate([*answer, "UNITS = 4"], 1)), ["build_model"]).code()
    assert other != bare
