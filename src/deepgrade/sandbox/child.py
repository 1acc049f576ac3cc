"""The student's side: run the notebook's cells, call each entry function, save the models.

Runs as ``python -m deepgrade.sandbox.child`` in the sandbox's working directory, which holds the notebook
copy and :data:`files.REQUEST`. Nothing it writes is trusted: the grader only loads the model files (with
safe_mode, after checking their config) and validates the options as data; :data:`files.RESULT` carries
messages. An entry function that takes an argument is given the course's pretrained base, a fresh copy for
each entry. Imports nothing of the grader.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from pathlib import Path

from ..course.notebooks import runs_in_sandbox
from ..errors import StudentCodeError, said
from ..habits import hint_for
from ..protocol import ChildRequest, ChildResult, Outcome, files, options_json
from .slicing import Need, Plan, Statement, plan

NOT_DONE = ("The exercise is not done yet: replace `raise NotImplementedError(...)` in {entry}() "
            "with code that builds the model and returns it.")
MAX_NOTES = 8


@functools.cache
def _shell_class():
    from IPython.core.interactiveshell import InteractiveShell

    class Shell(InteractiveShell):
        """IPython's shell with the one thing a kernel adds that notebooks use: a GUI event loop (``%matplotlib
        inline``) that draws nowhere; a bare shell raises NotImplementedError for it, and a jail has no screen."""

        def enable_gui(self, gui=None):
            return None

    return Shell


def _shell():
    """The notebook's shell. Its history stays in memory: no file is opened that a forked copy would share."""
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False
    return _shell_class().instance(config=config)


def _raised_by_stub(exc: BaseException, entry: str) -> bool:
    """The exception is the stub's own ``raise NotImplementedError`` in ``entry``'s body (raised there, not in
    something it called)."""
    if not isinstance(exc, NotImplementedError):
        return False
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_code.co_name == entry and tb.tb_frame.f_code.co_filename.startswith("<cell")


def _write(result: ChildResult, models: Path | None = None) -> None:
    """Write the result (and, in a jail, send it with every file in ``models`` down the result pipe)."""
    text = result.model_dump_json(exclude_none=True)
    Path(files.RESULT).write_text(text)
    fd = os.environ.get(files.RESULT_FD_ENV)
    if not fd:
        return
    frames = [files.frame(files.RESULT, text.encode())]
    if models is not None and models.is_dir():
        frames[:0] = [files.frame(f"{files.MODELS}/{p.name}", p.read_bytes()) for p in sorted(models.iterdir())]
    try:
        with open(int(fd), "wb", closefd=False) as pipe:
            for chunk in frames:
                pipe.write(chunk)
    except (OSError, ValueError):
        pass  # the notebook closed or broke the pipe: what was sent before stands


def _call(shell, entry: str, model_out: Path, base: str | None) -> Outcome:
    """Call one entry function and save its model; the outcome for that entry."""
    fn = shell.user_ns.get(entry)
    if not callable(fn):
        return Outcome(message=f"The notebook does not define a function `{entry}()`. "
                               f"Keep the `def {entry}():` line of the exercise and fill in its body.")
    from ..pretrained import load_base, takes_base

    try:
        if takes_base(fn):
            if not base:
                return Outcome(message=f"{entry}() takes an argument, but this exercise provides no pretrained base: "
                                       f"expected `def {entry}():` with no parameters.")
            model = fn(load_base(base))
        else:
            model = fn()
    except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt included
        advice = NOT_DONE.format(entry=entry) if _raised_by_stub(exc, entry) else (hint_for(exc) or "")
        return Outcome(ename=type(exc).__name__, message=f"{entry}() raised {said(exc)}. {advice}".rstrip())

    import keras

    if model is None:
        return Outcome(message=f"{entry}() returned None; expected a Keras model. Did you forget `return model` at the end?")
    if not isinstance(model, keras.Model):
        return Outcome(message=f"{entry}() returned a {type(model).__module__}.{type(model).__name__}; "
                               "expected a Keras 3 model (keras.Sequential or keras.Model). "
                               "Build it with `import keras`, not `tf.keras` from tf_keras.")
    try:
        if not model.built:
            model.build((None, 28, 28, 1))
        model.save(model_out)
    except Exception as exc:  # noqa: BLE001
        return Outcome(ename=type(exc).__name__, message=f"The model {entry}() returned could not be built and "
                                                         f"saved for 28x28x1 images ({said(exc)}). "
                                                         f"{hint_for(exc) or ''}".rstrip())
    return Outcome(ok=True)


def _options(shell, name: str, out: Path) -> Outcome:
    """Call the optional options function; save what it returns as JSON (data only, validated by the grader)."""
    fn = shell.user_ns.get(name)
    if fn is None:
        return Outcome(absent=True)
    if not callable(fn):
        return Outcome(message=f"`{name}` is not a function: expected `def {name}():` returning a dict of options.")
    try:
        value = fn()
    except BaseException as exc:  # noqa: BLE001
        return Outcome(ename=type(exc).__name__, message=f"{name}() raised {said(exc)}. {hint_for(exc) or ''}".rstrip())
    try:
        text = options_json(value, name)
    except StudentCodeError as exc:
        return Outcome(message=exc.message)
    out.write_text(text)
    return Outcome(ok=True)


def _plain(value, depth: int = 0):
    """``value`` as JSON data (tuples as lists, numpy scalars as numbers), or TypeError."""
    if depth > 8:
        raise TypeError("nested too deeply")
    if value is None or value is ... or isinstance(value, (bool, int, float, str)):
        return None if value is ... else value  # `answer_3 = ...` is the stub's "no answer yet"
    if isinstance(value, (list, tuple)):
        return [_plain(item, depth + 1) for item in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: _plain(item, depth + 1) for key, item in value.items()}
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # a numpy scalar
        return _plain(value.item(), depth + 1)
    if hasattr(value, "tolist"):  # a numpy array
        return _plain(value.tolist(), depth + 1)
    raise TypeError(f"a {type(value).__module__}.{type(value).__name__}")


def _values(shell, names: list[str]) -> tuple[dict, dict]:
    values, errors = {}, {}
    for name in names:
        if name not in shell.user_ns:
            continue
        try:
            values[name] = _plain(shell.user_ns[name])
            json.dumps(values[name], allow_nan=False)
        except (TypeError, ValueError) as exc:
            values.pop(name, None)
            errors[name] = f"`{name}` holds {exc}; expected plain data (a number, a string, a list or a tuple)."
    return values, errors


def warm_up() -> None:
    """Make the shell before any notebook is known (the warm jail of :mod:`.forked` forks it for each one)."""
    _shell()


def _needed_because(need: Need, statement: Statement, exc: BaseException) -> str:
    """``build_model() reads `num_classes`, set in cell 4, which raised ModuleNotFoundError: ...``, and what to do."""
    entry, path = need.target, need.path
    where = f"cell {statement.cell}"
    if len(path) == 1:
        what = f"{entry}() is defined in {where}, which raised {said(exc)}."
    else:
        verb = "set" if path[-1] in statement.defines else "changed"
        through = f" which needs `{path[-1]}`," if path[-1] != path[1] else ""
        what = f"{entry}() reads `{path[1]}`,{through} {verb} in {where}, which raised {said(exc)}."
    advice = hint_for(exc, statement.source) or (
        "The grader runs this line because the graded code needs it, in a sandbox without a network, Colab or "
        "your files: make it run there, or set what the function needs in a cell that does.")
    return f"{what} {advice}"


def _run_plan(shell, the_plan: Plan) -> tuple[dict[str, Outcome], list[str]]:
    """Run the plan's statements in notebook order in the shell's namespace. Returns, per target, why it cannot
    be called (a statement it needs raised), and notes (a statement that may matter raised; cells not parsed)."""
    import ast
    import linecache

    for cell in the_plan.cells:  # tracebacks (and the hints read from them) show the student's lines, as IPython's
        name = f"<cell {cell.number}>"
        linecache.cache[name] = (len(cell.python), None, cell.python.splitlines(keepends=True), name)
    failed: dict[str, Outcome] = {}
    notes = [f"Cell {c.number} is not valid Python ({c.problem}); none of it ran." for c in the_plan.cells
             if c.problem]
    with shell.builtin_trap:
        for statement in the_plan.statements():
            needs = the_plan.needed_by(statement)
            live = [n for n in needs if n.target not in failed]
            if not live:
                continue  # only targets that already failed need it
            code = compile(ast.Module(body=[statement.node], type_ignores=[]), f"<cell {statement.cell}>", "exec")
            try:
                exec(code, shell.user_ns)
            except BaseException as exc:  # noqa: BLE001 - SystemExit included: a cell's exit() is its error
                sure = {}
                for need in live:
                    if not need.maybe:
                        sure.setdefault(need.target, need)
                for target, need in sure.items():
                    failed[target] = Outcome(ename=type(exc).__name__, message=_needed_because(need, statement, exc))
                if not sure and len(notes) < MAX_NOTES:
                    notes.append(f"Cell {statement.cell} raised {said(exc)}; it ran because it may set something "
                                 f"{live[0].target}() reads, and grading went on without it.")
    return failed, notes


def main(argv: list[str] | None = None) -> int:
    request = ChildRequest.model_validate_json(Path(files.REQUEST).read_text())
    import nbformat

    try:
        nb = nbformat.read(request.notebook, as_version=4)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the student's
        _write(ChildResult(ename=type(exc).__name__,
                           message=f"The notebook could not be read as a Jupyter notebook ({said(exc)})."))
        return 1

    shell = _shell()
    failed: dict[str, Outcome] = {}
    result = ChildResult()
    the_plan = None
    if not request.keep_going:
        sources = [(number, cell.source) for number, cell in enumerate(nb.cells, start=1) if runs_in_sandbox(cell)]
        try:
            the_plan = plan(sources, request.entries, (request.options,) if request.options else ())
        except Exception as exc:  # noqa: BLE001 - a notebook the analysis cannot read: every cell runs
            result = ChildResult(notes=[f"Every cell ran: the notebook could not be analysed ({said(exc)})."])
    if the_plan is not None:
        failed, notes = _run_plan(shell, the_plan)
        code = hashlib.sha256(json.dumps(the_plan.code()).encode()).hexdigest()
        result = ChildResult(code=code, not_run=the_plan.summary()[:2000], notes=[n[:2000] for n in notes])
    else:  # a quiz (each answer stands alone), or no plan: every code cell, going on after errors
        for cell in nb.cells:
            if runs_in_sandbox(cell):
                shell.run_cell(cell.source, store_history=True)

    models = Path(request.models)
    models.mkdir(exist_ok=True)
    values, value_errors = _values(shell, request.values)
    result = result.model_copy(update={"values": values, "value_errors": value_errors})
    for entry in request.entries:
        outcome = failed.get(entry) or _call(shell, entry, models / files.model_file(entry), request.base)
        result = result.model_copy(update={"entries": {**result.entries, entry: outcome}})
        _write(result, models)  # sent as it goes: a crash later keeps what was done
    if request.options:
        options = (failed.get(request.options)
                   or _options(shell, request.options, models / files.options_file(request.options)))
        result = result.model_copy(update={"options": options})
    _write(result, models)
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # everything is sent: skip the interpreter's teardown of TensorFlow (about a second)
