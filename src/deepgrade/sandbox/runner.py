"""Run a student's notebook in its own subprocess and bring back only ``.keras`` files and messages.

The child (``python -m deepgrade.sandbox.child``) runs with a time limit, an
address-space limit, a scrubbed environment, no network (its own empty network
namespace, where ``unshare --net`` is allowed) and a fresh temporary working
directory that holds nothing but a copy of the notebook (and the course's
pretrained base, for the transfer exercise). Whatever it prints is kept as a
log; the grader uses only the model files, which it loads itself.
"""

from __future__ import annotations

import functools
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from ..errors import GraderError
from ..protocol import ChildRequest, ChildResult, Outcome, Submission, files


@dataclass(frozen=True)
class Limits:
    time_limit_s: float = 120
    memory_limit_mb: int = 4096


def scrubbed_env(workdir: Path) -> dict[str, str]:
    """The only environment the student process sees: no credentials, no course paths, no GPU."""
    bindir = str(Path(sys.executable).parent)
    return {
        "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(workdir),
        "TMPDIR": str(workdir / "tmp"),
        "KERAS_HOME": str(workdir / ".keras"),
        "IPYTHONDIR": str(workdir / ".ipython"),
        "MPLCONFIGDIR": str(workdir / ".matplotlib"),
        "MPLBACKEND": "Agg",
        "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "tensorflow"),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "CUDA_VISIBLE_DEVICES": "",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "LANG": "C.UTF-8",
    }


@functools.cache
def network_isolation() -> list[str]:
    """The command prefix that gives the child its own empty network namespace, or [] where that is not allowed.

    ``unshare --net`` needs root (or user namespaces); without it the child keeps the network and the
    grade records ``sandbox_network: "shared"``.
    """
    unshare = shutil.which("unshare")
    if unshare is None:
        return []
    try:
        ok = subprocess.run([unshare, "--net", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return [unshare, "--net", "--"] if ok else []


def _limit(memory_limit_mb: int):
    def apply() -> None:
        limit = memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def run_notebook(notebook: Path, entries: list[str], out: Path, limits: Limits = Limits(), *,
                 options: str | None = None, base: Path | None = None) -> Submission:
    """Run ``notebook`` then each entry function in a sandboxed child; copy the models into folder ``out``.

    ``options`` names an optional function returning training options (data, saved as JSON); ``base`` is the
    pretrained base's folder, placed beside the notebook and given to entry functions that take an argument.

    Never raises for the student's faults: a notebook that cannot be read, raises, or runs out of time or
    memory gives a :class:`Submission` whose ``failure`` says so; an entry function that raises or returns no
    Keras model is recorded in ``Submission.errors``. Raises :class:`GraderError` when no sandbox can start.
    """
    notebook = Path(notebook)
    network = "isolated" if network_isolation() else "shared"
    if not notebook.is_file():
        return Submission.failed(f"Notebook not found: expected a .ipynb file. Received: {notebook}.",
                                 network=network)
    with tempfile.TemporaryDirectory(prefix="deepgrade-student-") as tmp:
        work = Path(tmp)
        (work / "tmp").mkdir()
        shutil.copyfile(notebook, work / files.NOTEBOOK)
        (work / files.MODELS).mkdir()
        if base is not None:
            shutil.copytree(base, work / files.BASE)
        request = ChildRequest(notebook=files.NOTEBOOK, models=files.MODELS, entries=entries, options=options,
                               base=files.BASE if base is not None else None)
        (work / files.REQUEST).write_text(request.model_dump_json())
        cmd = [*network_isolation(), sys.executable, "-m", "deepgrade.sandbox.child"]
        start = time.monotonic()
        with open(work / "tmp" / "log.txt", "w+b") as log:
            try:
                proc = subprocess.Popen(
                    cmd, cwd=work, env=scrubbed_env(work), stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_limit(limits.memory_limit_mb),
                )
            except OSError as exc:
                raise GraderError(f"Could not start the sandbox process: {exc}.") from exc
            timed_out = False
            try:
                code = proc.wait(timeout=limits.time_limit_s)
            except subprocess.TimeoutExpired:
                timed_out, code = True, None
            finally:
                _kill_tree(proc)
            log.seek(0)
            text = log.read().decode("utf-8", "replace")
        seconds = time.monotonic() - start
        if timed_out:
            return Submission.failed(
                f"The notebook and {entries[0]}() did not finish within the time limit of "
                f"{limits.time_limit_s:g} s. Look for an infinite loop or for training code that runs "
                f"when the notebook is executed; {entries[0]}() only needs to build and return the model.",
                log=text, seconds=seconds, network=network)
        result = _read_result(work / files.RESULT)
        if not result.entries:
            return Submission.failed(_explain_failure(result, code, entries[0], limits, text),
                                     log=text, seconds=seconds, network=network)
        out.mkdir(parents=True, exist_ok=True)
        models, errors = {}, {}
        for name in entries:
            outcome = result.entries.get(name)
            made = work / files.MODELS / files.model_file(name)
            if outcome and outcome.ok and made.is_file():
                models[name] = Path(shutil.copyfile(made, out / made.name))
            elif outcome:
                errors[name] = _explain_failure(outcome, 0, name, limits, text)
            else:  # the process died while calling this entry, or before it
                errors[name] = _explain_failure(Outcome(), code, name, limits, text)
        given, options_error = None, None
        told = result.options or Outcome()
        if options and told.ok:
            options_path = work / files.MODELS / files.options_file(options)
            try:
                if options_path.stat().st_size > files.MAX_OPTIONS_BYTES:
                    raise ValueError("too large")
                given = json.loads(options_path.read_text())
                if given is not None and not isinstance(given, dict):
                    raise ValueError("not an object")
            except (OSError, ValueError):
                options_error = (f"{options}() returned options that could not be read back as a small JSON "
                                 f"object (at most {files.MAX_OPTIONS_BYTES:,} bytes expected).")
        elif options and told.message:
            options_error = told.message
        elif options and not told.absent:
            options_error = _explain_failure(Outcome(), code, options, limits, text)
        return Submission(models=models, errors=errors, options=given, options_error=options_error, log=text,
                          seconds=seconds, network=network)


def _kill_tree(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _read_result(path: Path) -> ChildResult:
    """The child's result; an absent, oversized or malformed file reads as an empty one."""
    try:
        if path.stat().st_size > files.MAX_RESULT_BYTES:
            return ChildResult()
        return ChildResult.model_validate_json(path.read_text())
    except (OSError, ValueError, ValidationError):
        return ChildResult()


def _explain_failure(result: ChildResult | Outcome, code: int | None, entry: str, limits: Limits, log: str) -> str:
    if result.message:
        message = result.message
        if result.ename == "MemoryError":
            message += f" The sandbox allows {limits.memory_limit_mb} MB."
        return message
    if code is not None and code < 0:
        sig = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        return (
            f"The notebook process was killed by {sig} before {entry}() returned a model "
            f"(the sandbox allows {limits.memory_limit_mb} MB of memory). Make the model or the data it builds smaller."
        )
    tail = "\n".join(log.strip().splitlines()[-5:])
    return f"The notebook process exited with code {code} before {entry}() returned a model. Last output:\n{tail}"
