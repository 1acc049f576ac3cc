"""The student's side: run the notebook's cells, call each entry function, save the models.

Runs as ``python -m deepgrade.sandbox.child`` in the sandbox's working directory, which holds the notebook
copy and :data:`files.REQUEST`. Nothing it writes is trusted: the grader only loads the model files (with
safe_mode, after checking their config) and validates the options as data; :data:`files.RESULT` carries
messages. An entry function that takes an argument is given the course's pretrained base, a fresh copy for
each entry. Imports nothing of the grader.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from ..course.notebooks import runs_in_sandbox
from ..errors import StudentCodeError, said
from ..habits import hint_for
from ..protocol import ChildRequest, ChildResult, Outcome, files, options_json

STARTED = time.monotonic()  # for a warm jail: how long its warm-up took (Python's start is near this)
NOT_DONE = ("The exercise is not done yet: replace `raise NotImplementedError(...)` in {entry}() "
            "with code that builds the model and returns it.")


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
        ename = type(exc).__name__
        advice = NOT_DONE.format(entry=entry) if ename == "NotImplementedError" else (hint_for(exc) or "")
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


def _warm_up() -> None:
    """Import what every notebook of the course imports, then wait for the notebook on stdin (a batch starts
    the next student's jail while the current one is graded). The notebook and the request arrive as frames."""
    import keras  # noqa: F401 - the TensorFlow start, before the notebook is known
    import nbformat  # noqa: F401
    from IPython.core.interactiveshell import InteractiveShell

    InteractiveShell.instance()
    warm = time.monotonic() - STARTED
    fd = os.environ.get(files.RESULT_FD_ENV)
    if fd:  # the time limit counts this warm-up, as it counts a cold start's imports
        with open(int(fd), "wb", closefd=False) as pipe:
            pipe.write(files.frame(files.WARM, json.dumps({"seconds": warm}).encode()))
    stream = sys.stdin.buffer
    wanted = {files.REQUEST, files.NOTEBOOK}
    while wanted:
        header = stream.readline()
        if not header:
            sys.exit(0)  # nobody came: the batch ended
        head = json.loads(header)
        data = stream.read(head["size"])
        if head["name"] in wanted:
            Path(head["name"]).write_bytes(data)
            wanted.discard(head["name"])


def main(argv: list[str] | None = None) -> int:
    if "--wait" in (argv or []):
        _warm_up()
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
        if not runs_in_sandbox(cell):
            continue
        outcome = shell.run_cell(cell.source, store_history=True)
        exc = outcome.error_before_exec or outcome.error_in_exec
        if exc is not None:
            if request.keep_going:
                continue
            ename = type(exc).__name__
            advice = (NOT_DONE.format(entry=request.entries[0]) if ename == "NotImplementedError" and request.entries
                      else hint_for(exc, cell.source)
                      or "Run the notebook from the top (Restart & Run All) and fix the first error.")
            _write(ChildResult(ename=ename, message=f"Cell {number} of the notebook raised {said(exc)}. {advice}"))
            return 1

    models = Path(request.models)
    models.mkdir(exist_ok=True)
    values, value_errors = _values(shell, request.values)
    result = ChildResult(values=values, value_errors=value_errors)
    for entry in request.entries:
        result = result.model_copy(update={"entries": {**result.entries, entry: _call(
            shell, entry, models / files.model_file(entry), request.base)}})
        _write(result, models)  # sent as it goes: a crash later keeps what was done
    if request.options:
        result = result.model_copy(update={"options": _options(shell, request.options,
                                                              models / files.options_file(request.options))})
    _write(result, models)
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # everything is sent: skip the interpreter's teardown of TensorFlow (about a second)
