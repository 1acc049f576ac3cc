"""Run a student's notebook in a jail and bring back only ``.keras`` files and messages.

The child (``python -m deepgrade.sandbox.child``) runs in a bubblewrap jail (:mod:`.jail`) under the
student limits of :mod:`.policy` (course.yml may change them per exercise): an unprivileged user in its own
namespaces, a read-only view of Python and Keras, a size-capped working directory holding the notebook copy
(and the course's pretrained base, for transfer), no network. Only the files it sends down the result pipe
come back. Where no jail can be made, :func:`run_notebook` falls back to a plain subprocess under the same
resource limits, and the submission says it was not isolated: callers grading other people's work refuse
that unless the instructor opted out (:func:`deepgrade.grader.isolated.isolation_for`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import GraderError
from ..protocol import ChildRequest, ChildResult, Outcome, Submission, files
from . import jail
from .policy import STUDENT, Limits

WORKDIR = "/home/student"  # the child's working directory inside the jail (a size-capped tmpfs)
DATA_SUBDIR = ".keras/datasets/fashion-mnist"  # under $HOME (= $KERAS_HOME's parent): where the stock loader looks


def scrubbed_env(workdir: Path, tmp: str | None = None) -> dict[str, str]:
    """The only environment the student process sees: no credentials, no course paths, no GPU."""
    bindir = str(Path(sys.executable).parent)
    return {
        "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(workdir),
        "TMPDIR": tmp or str(workdir / "tmp"),
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
    grade records it was not isolated.
    """
    unshare = shutil.which("unshare")
    if unshare is None:
        return []
    try:
        ok = subprocess.run([unshare, "--net", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return [unshare, "--net", "--"] if ok else []


def run_notebook(notebook: Path, entries: list[str], out: Path, limits: Limits = STUDENT, *,
                 options: str | None = None, base: Path | None = None, data: Path | None = None,
                 warm=None) -> Submission:
    """Run ``notebook`` then each entry function in the student's jail; copy the models into folder ``out``.

    ``options`` names an optional function returning training options (data, saved as JSON); ``base`` is the
    pretrained base's folder, placed beside the notebook and given to entry functions that take an argument;
    ``data`` the folder of the verified Fashion-MNIST files, seen read-only where the stock loader
    (``keras.datasets.fashion_mnist.load_data()``) finds them, so that what the graded functions read of the data
    is there.

    Never raises for the student's faults: a notebook that cannot be read, raises, or runs out of time or
    memory gives a :class:`Submission` whose ``failure`` says so; an entry function that raises or returns no
    Keras model is recorded in ``Submission.errors``. Raises :class:`GraderError` when no sandbox can start.
    ``warm``: the :class:`.warm.StudentServer` to run it in (default: this process's for these limits, base and
    data, :func:`.warm.server_for`; a jail of its own where none can be used).
    """
    notebook = Path(notebook)
    isolation = jail.isolation()
    label = isolation.label
    if not notebook.is_file():
        return Submission.failed(f"Notebook not found: expected a .ipynb file. Received: {notebook}.",
                                 isolation=label)
    request = ChildRequest(notebook=files.NOTEBOOK, models=files.MODELS, entries=entries, options=options,
                           base=files.BASE if base is not None else None)
    with _ran(notebook, request, base, limits, isolation.ok, warm, data) as (ran, back):
        return _submission(ran, back, entries, out, limits, options, label)


@dataclass(frozen=True)
class Values:
    """What :func:`run_for_values` brought back: plain data by name, and why the other names have none."""

    values: dict[str, Any]
    errors: dict[str, str]
    failure: str | None
    log: str
    isolation: str


def run_for_values(notebook: Path, names: list[str], limits: Limits = STUDENT) -> Values:
    """Run every code cell of ``notebook`` in the student's jail, going on after a cell raises (test cells
    and cells tagged deepgrade-skip are left out); the values of ``names`` come back as plain data only.
    Used for quizzes: the trusted side checks the answers, never the student's process."""
    isolation = jail.isolation()
    label = isolation.label
    request = ChildRequest(notebook=files.NOTEBOOK, models=files.MODELS, entries=[], values=names, keep_going=True)
    with _ran(Path(notebook), request, None, limits, isolation.ok) as (ran, back):
        result = _read_result(back / files.RESULT)
        failure = None
        if ran.stopped == "time":
            failure = f"The notebook did not finish within the time limit of {limits.time_limit_s:g} s."
        elif not (back / files.RESULT).is_file():
            failure = result.message or _explain_failure(result, ran.code, "the notebook", limits, ran.output)
        elif result.message:
            failure = result.message
        return Values(result.values, result.value_errors, failure, ran.output, label)


def _student_jail(limits: Limits, base: Path | None, given: list | None = None, *,
                  data: Path | None = None) -> jail.Jail:
    """The student's jail for one notebook: the child in the working folder, the course's base beside the
    notebook (transfer), the data in the Keras cache (read-only) and ``given`` bound in."""
    mounts = [*(given or []), *([jail.Mount(Path(base), f"{WORKDIR}/{files.BASE}")] if base is not None else []),
              *([jail.Mount(Path(data), f"{WORKDIR}/{DATA_SUBDIR}")] if data is not None else [])]
    return jail.Jail(argv=[sys.executable, "-m", "deepgrade.sandbox.child"],
                     cwd=WORKDIR, env=scrubbed_env(Path(WORKDIR), tmp="/tmp"), limits=limits, mounts=mounts)


def _start(how, spec: jail.Jail, **options):
    try:
        return how(spec, **options)
    except OSError as exc:
        raise GraderError(f"Could not start the student's sandbox (bubblewrap): {exc}.") from exc


@contextlib.contextmanager
def _ran(notebook: Path, request: ChildRequest, base: Path | None, limits: Limits, jailed: bool,
         warm=None, data: Path | None = None):
    """Run the child on ``request`` (in a jail when ``jailed``, else a plain subprocess); yield what ran and the
    folder of the files it sent back, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="deepgrade-student-") as tmp:
        work = Path(tmp)
        inbox = work / "in"
        inbox.mkdir()
        shutil.copyfile(notebook, inbox / files.NOTEBOOK)
        (inbox / files.REQUEST).write_text(request.model_dump_json())
        back = work / "back"
        back.mkdir()
        if jailed:
            yield _run_jailed(inbox, back, base, limits, request, warm, data), back
        else:
            yield _run_process(inbox, back, base, limits, request, data), back


def _run_jailed(inbox: Path, back: Path, base: Path | None, limits: Limits, request: ChildRequest,
                warm=None, data: Path | None = None) -> jail.Ran:
    from . import warm as warming

    server = warm if warm is not None and warm.fits(limits, base, data) else warming.server_for(limits, base, data)
    ran = None
    if server is not None:
        try:
            ran = server.run(request, inbox / files.NOTEBOOK)
        except warming.ServerLost:
            if server.refused:  # never here: every later notebook of this process gets a jail of its own
                warming.unavailable(server.why)
            server.close()
    if ran is None:  # no warm jail here: one of its own
        given = [jail.Mount(inbox / name, f"{WORKDIR}/{name}") for name in (files.NOTEBOOK, files.REQUEST)]
        ran = _start(jail.run, _student_jail(limits, base, given, data=data))
    if ran.code is not None and ran.code > 128:  # bubblewrap exits 128 + n when the child was killed by signal n
        ran = replace(ran, code=-(ran.code - 128))
    returnable = [files.model_file(entry) for entry in request.entries]
    returnable += [files.options_file(request.options)] if request.options else []
    allowed = {files.RESULT} | {f"{files.MODELS}/{name}" for name in returnable}
    for name, data in files.unframe(ran.returned, allowed.__contains__).items():
        (back / name).parent.mkdir(parents=True, exist_ok=True)
        (back / name).write_bytes(data)
    return ran


def _run_process(inbox: Path, work: Path, base: Path | None, limits: Limits, request: ChildRequest,
                 data: Path | None = None) -> jail.Ran:
    """No jail can be made here: a subprocess with the same resource limits, a scrubbed environment and a fresh
    working directory, its own network namespace where ``unshare --net`` is allowed. Not isolated on disk."""
    for name in (files.NOTEBOOK, files.REQUEST):
        shutil.copyfile(inbox / name, work / name)
    (work / "tmp").mkdir()
    if base is not None:
        shutil.copytree(base, work / files.BASE)
    if data is not None:  # no jail, so no read-only view: a link to the verified files
        (work / DATA_SUBDIR).parent.mkdir(parents=True)
        (work / DATA_SUBDIR).symlink_to(Path(data).resolve(), target_is_directory=True)
    cmd = [*network_isolation(), sys.executable, "-m", "deepgrade.sandbox.child"]
    start = time.monotonic()
    with open(work / "tmp" / "log.txt", "w+b") as log:
        try:
            proc = subprocess.Popen(
                cmd, cwd=work, env=scrubbed_env(work), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=jail.limits_outside(limits),
            )
        except OSError as exc:
            raise GraderError(f"Could not start the sandbox process: {exc}.") from exc
        stopped = None
        try:
            code = proc.wait(timeout=limits.time_limit_s)
        except subprocess.TimeoutExpired:
            stopped, code = "time", None
        finally:
            _kill_tree(proc)
        log.seek(0)
        text = log.read(limits.output_kb * 1024).decode("utf-8", "replace")
    return jail.Ran(code=code, seconds=time.monotonic() - start, output=text, returned=b"",
                    stopped=stopped)


def _submission(ran: jail.Ran, work: Path, entries: list[str], out: Path, limits: Limits, options: str | None,
                isolation: str) -> Submission:
    """What the child's files in ``work`` and its exit say about each entry function."""
    text, code, seconds = ran.output, ran.code, ran.seconds
    if ran.stopped == "time":
        return Submission.failed(
            f"The notebook and {entries[0]}() did not finish within the time limit of "
            f"{limits.time_limit_s:g} s. Look for an infinite loop or for training code that runs "
            f"when the notebook is executed; {entries[0]}() only needs to build and return the model.",
            log=text, seconds=seconds, isolation=isolation)
    if ran.stopped == "returned":
        return Submission.failed(
            f"The notebook sent back more than the sandbox's limit of {limits.return_mb} MB. "
            f"{entries[0]}() should return one model of a few MB; nothing else is read back.",
            log=text, seconds=seconds, isolation=isolation)
    result = _read_result(work / files.RESULT)
    if not result.entries:
        return Submission.failed(_explain_failure(result, code, entries[0], limits, text),
                                 log=text, seconds=seconds, isolation=isolation)
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
                      seconds=seconds, isolation=isolation, code=result.code, not_run=result.not_run,
                      notes=result.notes)


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
        why = {"SIGXCPU": f"it used more than the sandbox's {limits.cpu_time_s} s of CPU time. Look for a loop "
                          "or for training code that runs when the notebook is executed",
               "SIGXFSZ": f"it wrote a file larger than the sandbox's {limits.file_mb} MB. Write nothing that big"}
        return (f"The notebook process was killed by {sig} before {entry}() returned a model: "
                + why.get(sig, f"the sandbox allows {limits.memory_limit_mb} MB of memory. "
                               "Make the model or the data it builds smaller") + ".")
    tail = "\n".join(log.strip().splitlines()[-5:])
    return f"The notebook process exited with code {code} before {entry}() returned a model. Last output:\n{tail}"
