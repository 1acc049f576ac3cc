"""The sandboxed side: run the notebook's cells, call the entry function, save the model.

Runs as ``python -m deepgrade._child NOTEBOOK OUTDIR RESULT_OUT [--options NAME] ENTRY [ENTRY ...]``
inside the student's temporary directory. Nothing it writes is trusted: the
grader only loads OUTDIR/ENTRY.keras, with ``safe_mode=True``, and reads
OUTDIR/NAME.json (training options, plain data it validates); RESULT_OUT
carries messages. An entry function that takes an argument is given the
course's pretrained base (``$DEEPGRADE_BASE``, loaded with
:func:`deepgrade.transfer.load_base`), a fresh copy for each entry.
"""

from __future__ import annotations

import json
import sys


NOT_DONE = ("The exercise is not done yet: replace `raise NotImplementedError(...)` in {entry}() "
            "with code that builds the model and returns it.")


SKIP_TAG = "deepgrade-skip"


def _skipped(cell) -> bool:
    """nbgrader test cells (they call the grader) and cells tagged deepgrade-skip do not run here."""
    from deepgrade.submissions import is_test_cell

    return is_test_cell(cell) or SKIP_TAG in cell.get("metadata", {}).get("tags", [])


def _write(path: str, **result) -> None:
    with open(path, "w") as f:
        json.dump(result, f)


def _error(exc: BaseException) -> tuple[str, str]:
    text = str(exc).strip().splitlines()
    return type(exc).__name__, (text[0] if text else "")


def _call(shell, entry: str, model_out: str) -> dict:
    """Call one entry function and save its model; the outcome for that entry."""
    import os

    fn = shell.user_ns.get(entry)
    if not callable(fn):
        return {"message": f"The notebook does not define a function `{entry}()`. "
                           f"Keep the `def {entry}():` line of the exercise and fill in its body."}
    from deepgrade.transfer import load_base, takes_base

    try:
        if takes_base(fn):
            if not os.environ.get("DEEPGRADE_BASE"):
                return {"message": f"{entry}() takes an argument, but this exercise provides no pretrained base: "
                                   f"expected `def {entry}():` with no parameters."}
            model = fn(load_base())
        else:
            model = fn()
    except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt included
        ename, evalue = _error(exc)
        advice = NOT_DONE.format(entry=entry) if ename == "NotImplementedError" else ""
        said = f"{ename}: {evalue}" if evalue else ename
        return {"ename": ename, "message": f"{entry}() raised {said}. {advice}".rstrip()}

    import keras

    if model is None:
        return {"message": f"{entry}() returned None; expected a Keras model. Did you forget `return model` at the end?"}
    if not isinstance(model, keras.Model):
        return {"message": f"{entry}() returned a {type(model).__module__}.{type(model).__name__}; "
                           "expected a Keras 3 model (keras.Sequential or keras.Model). "
                           "Build it with `import keras`, not `tf.keras` from tf_keras."}
    try:
        if not model.built:
            model.build((None, 28, 28, 1))
        model.save(model_out)
    except Exception as exc:  # noqa: BLE001
        ename, evalue = _error(exc)
        return {"ename": ename, "message": f"The model {entry}() returned could not be built and saved "
                                           f"for 28x28x1 images ({ename}: {evalue})."}
    return {"ok": True}


def _options(shell, name: str, out: str) -> dict:
    """Call the optional options function; save what it returns as JSON (data only, validated by the grader)."""
    fn = shell.user_ns.get(name)
    if fn is None:
        return {"absent": True}
    if not callable(fn):
        return {"message": f"`{name}` is not a function: expected `def {name}():` returning a dict of options."}
    try:
        value = fn()
    except BaseException as exc:  # noqa: BLE001
        ename, evalue = _error(exc)
        return {"ename": ename, "message": f"{name}() raised {f'{ename}: {evalue}' if evalue else ename}."}
    if value is not None and not isinstance(value, dict):
        return {"message": f"{name}() returned a {type(value).__name__}; expected a dict of options "
                           "(plain numbers, strings and booleans) or None."}
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return {"message": f"{name}() returned options that are not plain data ({exc}); expected a dict of "
                           "numbers, strings and booleans: the grader builds callbacks itself, "
                           "so return their settings, not keras.callbacks objects."}
    with open(out, "w") as f:
        f.write(text)
    return {"ok": True}


def main(argv: list[str]) -> int:
    notebook, outdir, result_out, *entries = argv
    options = None
    if entries[:1] == ["--options"]:
        options, entries = entries[1], entries[2:]
    import nbformat
    from IPython.core.interactiveshell import InteractiveShell

    try:
        nb = nbformat.read(notebook, as_version=4)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the student's
        ename, evalue = _error(exc)
        _write(result_out, message=f"The notebook could not be read as a Jupyter notebook ({ename}: {evalue}).")
        return 1

    shell = InteractiveShell.instance()
    for number, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "code" or _skipped(cell):
            continue
        outcome = shell.run_cell(cell.source, store_history=True)
        exc = outcome.error_before_exec or outcome.error_in_exec
        if exc is not None:
            ename, evalue = _error(exc)
            advice = (NOT_DONE.format(entry=entries[0]) if ename == "NotImplementedError"
                      else "Run the notebook from the top (Restart & Run All) and fix the first error.")
            _write(result_out, ename=ename, message=f"Cell {number} of the notebook raised {ename}: {evalue}. {advice}")
            return 1

    outcomes = {}
    for entry in entries:
        outcomes[entry] = _call(shell, entry, f"{outdir}/{entry}.keras")
        _write(result_out, entries=outcomes)  # written as it goes: a crash later keeps what was done
    if options:
        _write(result_out, entries=outcomes, options=_options(shell, options, f"{outdir}/{options}.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
