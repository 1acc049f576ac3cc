"""The student's side: run the notebook's cells, call each entry function, save the models.

Runs as ``python -m deepgrade.sandbox.child`` in the sandbox's working directory, which holds the notebook
copy and :data:`files.REQUEST`. Nothing it writes is trusted: the grader only loads the model files (with
safe_mode, after checking their config) and validates the options as data; :data:`files.RESULT` carries
messages. An entry function that takes an argument is given the course's pretrained base, a fresh copy for
each entry. Imports nothing of the grader.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..course.notebooks import SKIP_TAG, is_test_cell
from ..errors import said
from ..protocol import ChildRequest, ChildResult, Outcome, files

NOT_DONE = ("The exercise is not done yet: replace `raise NotImplementedError(...)` in {entry}() "
            "with code that builds the model and returns it.")


def _skipped(cell) -> bool:
    """nbgrader test cells (they call the grader) and cells tagged deepgrade-skip do not run here."""
    return is_test_cell(cell) or SKIP_TAG in cell.get("metadata", {}).get("tags", [])


def _write(result: ChildResult) -> None:
    Path(files.RESULT).write_text(result.model_dump_json(exclude_none=True))


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
        ename = type(exc).__name__
        advice = NOT_DONE.format(entry=entry) if ename == "NotImplementedError" else ""
        return Outcome(ename=ename, message=f"{entry}() raised {said(exc)}. {advice}".rstrip())

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
                                                         f"saved for 28x28x1 images ({said(exc)}).")
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
        return Outcome(ename=type(exc).__name__, message=f"{name}() raised {said(exc)}.")
    if value is not None and not isinstance(value, dict):
        return Outcome(message=f"{name}() returned a {type(value).__name__}; expected a dict of options "
                               "(plain numbers, strings and booleans) or None.")
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return Outcome(message=f"{name}() returned options that are not plain data ({exc}); expected a dict of "
                               "numbers, strings and booleans: the grader builds callbacks itself, "
                               "so return their settings, not keras.callbacks objects.")
    out.write_text(text)
    return Outcome(ok=True)


def main() -> int:
    request = ChildRequest.model_validate_json(Path(files.REQUEST).read_text())
    import nbformat
    from IPython.core.interactiveshell import InteractiveShell

    try:
        nb = nbformat.read(request.notebook, as_version=4)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the student's
        _write(ChildResult(ename=type(exc).__name__,
                           message=f"The notebook could not be read as a Jupyter notebook ({said(exc)})."))
        return 1

    shell = InteractiveShell.instance()
    for number, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "code" or _skipped(cell):
            continue
        outcome = shell.run_cell(cell.source, store_history=True)
        exc = outcome.error_before_exec or outcome.error_in_exec
        if exc is not None:
            ename = type(exc).__name__
            advice = (NOT_DONE.format(entry=request.entries[0]) if ename == "NotImplementedError"
                      else "Run the notebook from the top (Restart & Run All) and fix the first error.")
            _write(ChildResult(ename=ename, message=f"Cell {number} of the notebook raised {said(exc)}. {advice}"))
            return 1

    models = Path(request.models)
    result = ChildResult()
    for entry in request.entries:
        result = result.model_copy(update={"entries": {**result.entries, entry: _call(
            shell, entry, models / files.model_file(entry), request.base)}})
        _write(result)  # written as it goes: a crash later keeps what was done
    if request.options:
        _write(result.model_copy(update={"options": _options(shell, request.options,
                                                             models / files.options_file(request.options))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
