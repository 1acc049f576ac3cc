"""Shared fixtures: the real course, sample submissions, real grades shared across the run, and course copies
with edited settings."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from deepgrade.course import load_course, write_submission

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
SUBMISSIONS = REPO / "tests" / "submissions"


def pytest_collection_modifyitems(config, items):
    """A test that asks for a real grade (the sandbox, then training) is slow: ``-m "not slow"`` leaves it out."""
    for item in items:
        if "graded" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def course():
    return load_course(REPO)


@pytest.fixture(scope="session")
def make_submission(tmp_path_factory, course):
    """make_submission("mlp", "wrong_units") -> the stub filled with tests/submissions/mlp/wrong_units.py."""
    folder = tmp_path_factory.mktemp("submissions")

    def make(exercise: str, answer: str) -> Path:
        return write_submission(course.release_notebook(exercise), SUBMISSIONS / exercise / f"{answer}.py",
                                folder / exercise / f"{answer}.ipynb")

    return make


REAL = REPO / "tests" / "real_notebooks"


def real_notebook(course, name: str, out: Path, extra: list[str] = ()) -> Path:
    """tests/real_notebooks/NAME.ipy (percent format: ``# %%`` starts a student's cell, ``# %% [answer F]`` fills
    the solution cell of F) made into the released stub as a student fills it: their first cells just before
    the first answer (after what the stub gives: imports, a baseline), the others after the answer before them,
    in order; ``extra`` cells appended at the end. Written to ``out``."""
    import nbformat

    from deepgrade.course.notebooks import _answer_id

    exercise = name.split("_")[0]
    nb = nbformat.read(course.release_notebook(exercise), as_version=4)
    chunks = re.split(r"^# %%(.*)\n", (REAL / f"{name}.ipy").read_text(), flags=re.M)[1:]
    pending, where = [], None
    for marker, source in [*zip(chunks[::2], chunks[1::2], strict=True), *(("", s) for s in extra)]:
        answer = re.fullmatch(r"\s*\[answer (\w+)\]\s*", marker)
        if answer:
            where = next(i for i, c in enumerate(nb.cells) if _answer_id(c) == answer[1])
            nb.cells[where].source = source.strip() + "\n"
            nb.cells[where:where] = pending
            where += len(pending) + 1
            pending = []
        elif where is None:
            pending.append(nbformat.v4.new_code_cell(source.strip()))
        else:
            nb.cells.insert(where, nbformat.v4.new_code_cell(source.strip()))
            where += 1
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)
    return out


GENERATE = """
import sys
from nbgrader.apps.generateassignmentapp import GenerateAssignmentApp
for name in sys.argv[1:]:  # `nbgrader generate_assignment NAME --force`, each in turn, in one process
    app = GenerateAssignmentApp.instance()
    app.initialize([name, "--force"])
    app.start()
    GenerateAssignmentApp.clear_instance()
"""


def generate_assignments(folder: Path, names: list[str]) -> None:
    """``nbgrader generate_assignment NAME --force`` in ``folder`` for each of ``names``: nbgrader's own app, run
    for each in turn in one process (one Python and nbgrader start for all of them)."""
    import subprocess
    import sys

    from deepgrade.demo import tool_env

    proc = subprocess.run([sys.executable, "-c", GENERATE, *names], cwd=folder, env=tool_env(), capture_output=True,
                          text=True)
    assert proc.returncode == 0 and "| ERROR]" not in proc.stderr, proc.stdout[-3000:] + proc.stderr[-3000:]


def real_expectation(name: str) -> str:
    """The ``# expect:`` line of tests/real_notebooks/NAME.ipy."""
    return re.search(r"^# expect: (.*)$", (REAL / f"{name}.ipy").read_text(), flags=re.M)[1]


@pytest.fixture
def edited_course(tmp_path):
    """edited_course(lambda data: ...) -> a copy of the course whose course.yml was changed by the function."""

    def make(edit) -> Path:
        root = tmp_path / "course"
        for part in ("autograders", "solutions", "exercises", "tests/submissions"):
            shutil.copytree(REPO / part, root / part)
        data = yaml.safe_load((REPO / "course.yml").read_text())
        edit(data)
        (root / "course.yml").write_text(yaml.safe_dump(data, sort_keys=False))
        return root

    return make


def impulse_receptive_field(layers, size=64):
    """Measure the receptive field with Keras: the span of input pixels that change the centre output of an
    all-ones stack (with dilation, pixels inside the span may not contribute; the span is the field)."""
    import keras

    model = keras.Sequential([keras.Input((size, 1, 1))] + [
        keras.layers.Conv2D(1, (k, 1), strides=(s, 1), dilation_rate=(d, 1), kernel_initializer="ones",
                            use_bias=False) for k, s, d in layers])
    eye = np.eye(size, dtype="float32")[:, :, None, None]  # one impulse per input position
    out = keras.ops.convert_to_numpy(model(eye))[:, :, 0, 0]
    centre = out.shape[1] // 2
    hit = np.flatnonzero(out[:, centre])
    return int(hit[-1] - hit[0] + 1)


def by_name(report):
    """A report's check results by check name."""
    return {c.name: c for c in report.checks}


@pytest.fixture(scope="session")
def graded(course, make_submission, tmp_path_factory):
    """graded(exercise, answer, seed=1, profile="smoke", backend="tensorflow", retry=True) -> the Report of a real
    grade (``retry=False``: one training only, as calibration measures it): the
    answer's notebook run in the student's jail (on TensorFlow), every check graded by the trusted grader (on
    TensorFlow in this worker, sparing a second TensorFlow start per grade; the grader's own jail is tested end to
    end in test_grading, test_nbgrader and the attacks; on another backend by a grader worker in its jail, one
    per backend and pytest-xdist worker).

    Shared by the whole run: each (exercise, answer, seed, profile) is graded once, by whichever pytest-xdist
    worker asks first (a lock file per key; the others wait and read its JSON). ``answer`` is "solution"
    (the reference), "stub" (the released notebook), "real:NAME" (tests/real_notebooks/NAME.ipy; its grade is
    also kept by what was built, in the store folder ``graded.store``) or a file of
    tests/submissions/<exercise>/.
    """
    from deepgrade.batch.store import BuiltCache
    from deepgrade.grader import grade
    from deepgrade.grader.run import build_submission
    from deepgrade.grader.worker import GraderWorker
    from deepgrade.protocol import Report, Submission

    shared = tmp_path_factory.getbasetemp()
    shared = shared.parent if shared.name.startswith("popen-gw") else shared  # one folder for every worker
    folder = shared / "graded"
    folder.mkdir(exist_ok=True)

    workers = {}  # backend -> a GraderWorker of this pytest-xdist worker

    def built(exercise: str, answer: str):
        """The answer's models, built once per run in the student's jail (shared by every backend's grade)."""
        here = folder / f"{exercise}-{re.sub(r'[^A-Za-z0-9_]+', '_', answer)}-models"
        with open(here.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (here / "submission.json").is_file():
                notebook = (course.source_notebook(exercise) if answer == "solution" else
                            course.release_notebook(exercise) if answer == "stub" else
                            real_notebook(course, answer[len("real:"):], here.with_suffix(".ipynb"))
                            if answer.startswith("real:") else make_submission(exercise, answer))
                tmp = Path(tempfile.mkdtemp(prefix=here.name, dir=folder))
                submission = build_submission(course, exercise, notebook, tmp)
                relative = {k: Path(v).relative_to(tmp) for k, v in submission.models.items()}
                (tmp / "submission.json").write_text(submission.model_copy(update={"models": relative}).model_dump_json())
                tmp.rename(here)
        submission = Submission.model_validate_json((here / "submission.json").read_text())
        return submission.model_copy(update={"models": {k: here / v for k, v in submission.models.items()}})

    def get(exercise: str, answer: str, seed: int = 1, profile: str = "smoke", backend: str = "tensorflow",
            retry: bool = True):
        name = re.sub(r"[^A-Za-z0-9_]+", "_", answer)  # "../mlp/logistic": a baseline another exercise's folder holds
        key = folder / (f"{exercise}-{name}-{profile}-{seed}" + ("" if backend == "tensorflow" else f"-{backend}")
                        + ("" if retry else "-once"))
        with open(key.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not key.with_suffix(".json").is_file():
                submission = built(exercise, answer)
                if backend == "tensorflow":
                    report = grade(course, exercise, submission, profile=profile, seed=seed, retry=retry)
                else:
                    if backend not in workers:
                        workers[backend] = GraderWorker(course, backend=backend).start()
                    report = workers[backend].grade(exercise, submission, profile=profile, seed=seed, retry=retry)
                if answer.startswith("real:"):  # kept by what was built, as a batch keeps it (see test_real_notebooks)
                    BuiltCache(get.store, course, exercise, profile=profile, seed=seed).put(
                        submission, report)
                tmp = key.with_suffix(".tmp")
                tmp.write_text(json.dumps(report.dump()))
                tmp.rename(key.with_suffix(".json"))
        return Report.read(key.with_suffix(".json"))

    get.store = folder / "store"
    yield get
    for worker in workers.values():
        worker.close()


@pytest.fixture(scope="session")
def checked(course, make_submission, tmp_path_factory):
    """checked(exercise, answer, only) -> the Report of the checks ``only``, graded in this process by the real
    autograder on models the answer builds here (no sandbox): for the wording of messages, in a second.

    Only for well-behaved answers (the answer's code runs in the test process); the sandbox's own behaviour is
    tested through ``graded``.
    """
    import ast

    import nbformat

    from deepgrade.course import runs_in_sandbox
    from deepgrade.grader import grade
    from deepgrade.pretrained import load_base, takes_base
    from deepgrade.protocol import Submission
    from deepgrade.sandbox.slicing import plan

    folder = tmp_path_factory.mktemp("checked")

    def run(exercise: str, answer: str, only: list[str], seed: int = 1):
        import keras

        keras.backend.clear_session()  # layer names as in a fresh process (the sandbox's), whatever ran here before
        ex = course.exercise(exercise)
        nb = nbformat.read(make_submission(exercise, answer), as_version=4)
        namespace: dict = {}
        sources = [(n, cell.source) for n, cell in enumerate(nb.cells, 1) if runs_in_sandbox(cell)]
        for statement in plan(sources, [ex.entry, *ex.extra_entries], (ex.options,) if ex.options else ()).statements():
            exec(compile(ast.Module([statement.node], []), f"{answer}.ipynb", "exec"), namespace)  # as the jail runs it
        models, errors = {}, {}
        for entry in [ex.entry, *ex.extra_entries]:
            fn = namespace[entry]
            try:
                model = fn(load_base(course.base_handle(exercise))) if takes_base(fn) else fn()
            except NotImplementedError:  # a part the answer leaves as the stub
                errors[entry] = f"{entry}() raised NotImplementedError."
                continue
            models[entry] = folder / f"{exercise}-{answer}-{entry}.keras"
            model.save(models[entry])
        options = namespace[ex.options]() if ex.options and ex.options in namespace else None
        return grade(course, exercise, Submission(models=models, errors=errors, options=options), profile="smoke",
                     seed=seed, only=only)

    return run


def graded_solution(graded, exercise: str, checks: list[str]):
    """The exercise's reference solution graded in the smoke profile under seed 1: every check, in order, passes."""
    report = graded(exercise, "solution")
    assert [c.name for c in report.checks] == checks
    assert all(c.passed for c in report.checks), report.checks
    return report


def edit_config(path, edit):
    """Rewrite a .keras archive's config.json with ``edit(config)``, as a hostile student could."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist()}
    config = json.loads(files["config.json"])
    edit(config)
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, content in files.items():
            z.writestr(name, content)
    return path


def tagged(tag: str) -> list[int]:
    """The host processes whose command line holds ``tag`` (attack tests tag what they start, to find and end it)."""
    found = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if tag.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


# Notebook code for attack tests: ``orphan(tag)`` leaves a detached process behind (a new session, then a grandchild
# whose parent exits at once), tagged in its argv so that ``tagged`` finds it; it ends by itself within 60 s.
ORPHAN_SOURCE = """
import os, sys
def orphan(tag):
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            if os.fork() == 0:
                os.execv(sys.executable, [sys.executable, "-c",
                                          "import time; [time.sleep(1) for _ in range(60)]", tag])
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    print("SPAWNED", tag, flush=True)
"""
