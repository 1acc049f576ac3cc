"""Run a student's notebook in its own subprocess and bring back only a ``.keras`` file.

The child (``python -m deepgrade._child``) runs with a time limit, an
address-space limit, a scrubbed environment, no network (its own empty network
namespace, where ``unshare --net`` is allowed) and a fresh temporary working
directory that holds nothing but a copy of the notebook. Whatever it prints is
kept as a log; the only thing the grader uses is the model file, which it then
loads itself with ``safe_mode=True``.
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

from .errors import GraderError, StudentCodeError

NOTEBOOK_NAME = "submission.ipynb"
MODELS_DIR = "models"
RESULT_NAME = "result.json"
MAX_OPTIONS_BYTES = 65536  # training options are a few settings, never data


@dataclass(frozen=True)
class Limits:
    time_limit_s: float = 120
    memory_limit_mb: int = 4096


@dataclass(frozen=True)
class Built:
    """What came back: per entry function, the model file or the message saying why there is none."""

    models: dict[str, Path]
    errors: dict[str, str]
    log: str
    seconds: float
    options: dict | None = None  # what the notebook's options function returned (plain data), None if absent
    options_error: str | None = None

    def fit_options(self, entry: str = "fit_options"):
        """The training options, validated (:class:`deepgrade.config.FitOptions`), or the student's error."""
        from .trusted import parse_options

        if self.options_error:
            raise StudentCodeError(self.options_error)
        return parse_options(self.options, entry)

    def model(self, entry: str) -> Path:
        if entry in self.models:
            return self.models[entry]
        raise StudentCodeError(self.errors.get(entry, f"{entry}() returned no model."))


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


def build_model(notebook: Path, entry: str | list[str], out: Path, limits: Limits = Limits(), *,
                options: str | None = None, base: str | None = None) -> Built:
    """Run ``notebook`` then each entry function in a sandboxed child; copy the models into folder ``out``.

    ``options`` names an optional function returning training options (data, saved as JSON);
    ``base`` is the pretrained base's folder, passed to entry functions that take an argument.

    Raises :class:`StudentCodeError` with a message for the student when the
    notebook raises or runs out of time or memory; an entry function that
    raises or returns no Keras model is recorded in ``Built.errors``.
    """
    entries = [entry] if isinstance(entry, str) else list(entry)
    notebook = Path(notebook)
    if not notebook.is_file():
        raise StudentCodeError(
            f"Notebook not found: expected a .ipynb file. Received: {notebook}.",
            tip="Check the path you passed to `deepgrade check`.",
        )
    with tempfile.TemporaryDirectory(prefix="deepgrade-student-") as tmp:
        work = Path(tmp)
        (work / "tmp").mkdir()
        shutil.copyfile(notebook, work / NOTEBOOK_NAME)
        (work / MODELS_DIR).mkdir()
        cmd = [*network_isolation(), sys.executable, "-m", "deepgrade._child", NOTEBOOK_NAME, MODELS_DIR, RESULT_NAME,
               *(["--options", options] if options else []), *entries]
        env = scrubbed_env(work)
        if base:
            env["DEEPGRADE_BASE"] = base
        start = time.monotonic()
        with open(work / "tmp" / "log.txt", "w+b") as log:
            try:
                proc = subprocess.Popen(
                    cmd, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_limit(limits.memory_limit_mb),
                )
            except OSError as exc:
                raise GraderError(f"Could not start the sandbox process: {exc}.") from exc
            try:
                code = proc.wait(timeout=limits.time_limit_s)
            except subprocess.TimeoutExpired:
                _kill_tree(proc)
                raise StudentCodeError(
                    f"The notebook and {entries[0]}() did not finish within the time limit of "
                    f"{limits.time_limit_s:g} s. Look for an infinite loop or for training code that runs "
                    f"when the notebook is executed; {entries[0]}() only needs to build and return the model."
                ) from None
            finally:
                _kill_tree(proc)
            log.seek(0)
            text = log.read().decode("utf-8", "replace")
        seconds = time.monotonic() - start
        result = _read_result(work / RESULT_NAME)
        outcomes = result.get("entries") if isinstance(result.get("entries"), dict) else {}
        if not outcomes:
            raise StudentCodeError(_explain_failure(result, code, entries[0], limits, text))
        out.mkdir(parents=True, exist_ok=True)
        models, errors = {}, {}
        for name in entries:
            outcome = outcomes.get(name) if isinstance(outcomes.get(name), dict) else None
            made = work / MODELS_DIR / f"{name}.keras"
            if outcome and outcome.get("ok") and made.is_file():
                models[name] = Path(shutil.copyfile(made, out / made.name))
            elif outcome:
                errors[name] = _explain_failure(outcome, 0, name, limits, text)
            else:  # the process died while calling this entry, or before it
                errors[name] = _explain_failure({}, code, name, limits, text)
        given, options_error = None, None
        told = result.get("options") if isinstance(result.get("options"), dict) else {}
        if options and told.get("ok"):
            options_file = work / MODELS_DIR / f"{options}.json"
            try:
                if options_file.stat().st_size > MAX_OPTIONS_BYTES:
                    raise ValueError("too large")
                given = json.loads(options_file.read_text())
            except (OSError, ValueError):
                options_error = (f"{options}() returned options that could not be read back as a small JSON "
                                 f"object (at most {MAX_OPTIONS_BYTES:,} bytes expected).")
        elif options and "message" in told:
            options_error = str(told["message"])
        elif options and not told.get("absent"):
            options_error = _explain_failure({}, code, options, limits, text)
        return Built(models, errors, text, seconds, given, options_error)


def _kill_tree(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _read_result(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _explain_failure(result: dict, code: int, entry: str, limits: Limits, log: str) -> str:
    if "message" in result:
        message = str(result["message"])
        if result.get("ename") == "MemoryError":
            message += f" The sandbox allows {limits.memory_limit_mb} MB."
        return message
    if code < 0:
        sig = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        return (
            f"The notebook process was killed by {sig} before {entry}() returned a model "
            f"(the sandbox allows {limits.memory_limit_mb} MB of memory). Make the model or the data it builds smaller."
        )
    tail = "\n".join(log.strip().splitlines()[-5:])
    return f"The notebook process exited with code {code} before {entry}() returned a model. Last output:\n{tail}"
