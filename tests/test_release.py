"""A released notebook works anywhere deepgrade is installed: the course packaged with it (course/bundle.py).

Fast: the bundle is current with the repository (run `make bundle` when this fails), validates, carries the same
exercises, checks, points and thresholds, holds no solution, is found last (after $DEEPGRADE_COURSE and a
course.yml upwards) and is hidden from the student's jail. Slow: the released notebook checked in a real kernel
from an empty folder, `deepgrade check` from an empty folder against the repository's verdicts, and the wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import nbformat
import pytest

from conftest import REPO
from deepgrade.course import BUNDLE_DIR, COURSE_ENV, bundle_drift, find_course_root, load_course
from deepgrade.errors import ConfigError

DEEPGRADE = Path(sys.executable).with_name("deepgrade")


@pytest.fixture
def outside(tmp_path, monkeypatch):
    """An empty folder with no course.yml above it, as the working directory, and no $DEEPGRADE_COURSE."""
    folder = tmp_path / "student"
    folder.mkdir()
    assert not any((p / "course.yml").is_file() for p in (folder, *folder.parents)), "a course.yml above tmp_path"
    monkeypatch.delenv(COURSE_ENV, raising=False)
    monkeypatch.chdir(folder)
    return folder


def bundle_listing(folder: Path = BUNDLE_DIR) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


# -- the bundle and its source ---------------------------------------------------------------------------------


def test_bundle_is_current_with_the_repository():
    drift = bundle_drift(REPO)
    assert not drift, "the packaged course is stale; regenerate it with `make bundle`:\n" + "\n".join(drift)


def test_bundle_validates_and_grades_like_the_repository():
    repo, bundled = load_course(REPO), load_course(BUNDLE_DIR)
    assert bundled.bundled and not repo.bundled
    assert "packaged with deepgrade" in bundled.where
    assert list(bundled.course.exercises) == list(repo.course.exercises)
    for name, ex in repo.course.exercises.items():
        mine = bundled.course.exercises[name]
        leave = {"notebook", "baselines", "answers", "transfer"}
        assert mine.model_dump(exclude=leave) == ex.model_dump(exclude=leave), name
        assert not mine.baselines and not mine.answers  # their code is sample solutions
        assert mine.notebook.startswith("exercises/")
        assert bundled.autograder(name).read_bytes() == repo.autograder(name).read_bytes()
        assert bundled.release_notebook(name).read_bytes() == repo.release_notebook(name).read_bytes()
        if ex.transfer is not None:
            assert mine.transfer.model_dump(exclude={"handle"}) == ex.transfer.model_dump(exclude={"handle"})
            theirs, ours = Path(repo.base_handle(name)), Path(bundled.base_handle(name))
            assert ours.is_relative_to(BUNDLE_DIR)
            assert bundle_listing(ours) == bundle_listing(theirs)
    with pytest.raises(ConfigError, match="released notebooks only, no solutions"):
        bundled.source_notebook("mlp")
    with pytest.raises(ConfigError) as info:
        bundled.exercise("mlpp")
    assert "packaged with deepgrade" in info.value.tip and "DEEPGRADE_COURSE" in info.value.tip


def solution_snippets() -> list[str]:
    """What must never travel: the body of every solution cell of solutions/ and every sample answer."""
    snippets = []
    for path in sorted((REPO / "solutions").rglob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.get("metadata", {}).get("nbgrader", {}).get("solution") and "BEGIN SOLUTION" in cell.source:
                body = cell.source.split("### BEGIN SOLUTION", 1)[1].split("### END SOLUTION", 1)[0].strip()
                snippets += [body] if len(body) > 20 else []
    snippets += [p.read_text().strip() for p in sorted((REPO / "tests" / "submissions").rglob("*.py"))]
    return snippets


def texts(name: str, data: bytes) -> list[str]:
    """The text of a file as read for solutions: each cell of a notebook, else the file."""
    if name.endswith(".ipynb"):
        return [c.source for c in nbformat.reads(data.decode(), as_version=4).cells]
    try:
        return [data.decode("utf-8")]
    except UnicodeDecodeError:
        return []


def assert_holds_no_solution(files: dict[str, bytes]) -> None:
    """No file of solutions/ but those the release holds too, no sample answer, no solution cell's code, and
    every build_model in a notebook raises NotImplementedError (the released stub)."""
    released = {p.read_bytes() for p in (REPO / "exercises").rglob("*") if p.is_file()}
    secret = {p.read_bytes(): p for p in (REPO / "solutions").rglob("*") if p.is_file()}
    secret |= {p.read_bytes(): p for p in (REPO / "tests").rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    leaked = [f"{name} is {secret[data]}" for name, data in files.items() if data and data in secret and data not in released]
    assert not leaked, leaked
    snippets = solution_snippets()
    assert len(snippets) > 10
    found = [f"{name} holds {s[:60]!r}" for name, data in files.items() for text in texts(name, data)
             for s in snippets if s in text]
    assert not found, found
    stubs = 0
    for name, data in files.items():
        for text in texts(name, data) if name.endswith(".ipynb") else []:
            if "def build_model" in text:
                scope: dict = {}
                exec(compile(text, name, "exec"), scope)  # a stub's cell: defines the function, imports nothing
                with pytest.raises(NotImplementedError):
                    fn = scope["build_model"]
                    fn(None) if fn.__code__.co_argcount else fn()
                stubs += 1
    assert stubs >= 5 or not any(n.endswith(".ipynb") for n in files)


def test_bundle_holds_no_solution():
    assert_holds_no_solution(bundle_listing())


# -- which course is used ----------------------------------------------------------------------------------------


def test_the_packaged_course_is_used_last(outside, monkeypatch):
    assert find_course_root() == BUNDLE_DIR
    loaded = load_course()
    assert loaded.bundled and loaded.root == BUNDLE_DIR
    (outside / "course.yml").write_text("name: x\n")
    assert find_course_root() == outside  # a course.yml upwards comes first
    monkeypatch.setenv(COURSE_ENV, str(REPO))
    assert find_course_root() == REPO  # $DEEPGRADE_COURSE before both


def test_without_any_course_the_tip_fits_a_notebook(outside, monkeypatch):
    import deepgrade.course.loader as loader

    monkeypatch.setattr(loader, "BUNDLE_DIR", outside / "no_bundle")
    with pytest.raises(ConfigError) as info:
        find_course_root()
    assert "No course.yml found" in info.value.message
    assert "--course" not in info.value.tip and "DEEPGRADE_COURSE" in info.value.tip


def test_bundling_the_bundle_is_refused():
    with pytest.raises(ConfigError, match="the bundle itself"):
        bundle_drift(BUNDLE_DIR)


# -- the jails ----------------------------------------------------------------------------------------------------


def test_the_student_jail_does_not_see_the_bundle_and_the_graders_does():
    from deepgrade.sandbox import Limits, isolation, jail

    if not isolation().ok:
        pytest.skip(f"no bubblewrap jail on this machine: {isolation().reason}")
    code = f"import os; print(sorted(os.listdir({str(BUNDLE_DIR)!r})))"
    limits = Limits.of("student", time_limit_s=60)
    student = jail.run(jail.Jail(argv=[sys.executable, "-c", code], cwd="/work", env={}, limits=limits))
    assert student.code == 0 and student.output.strip() == "[]", student.output
    grader = jail.run(jail.Jail(argv=[sys.executable, "-c", code], cwd="/work", env={}, limits=limits,
                                mounts=[jail.Mount(BUNDLE_DIR, str(BUNDLE_DIR))]))
    assert grader.code == 0 and "course.yml" in grader.output and "autograders" in grader.output, grader.output


# -- end to end: a released notebook outside the repository ---------------------------------------------------


def reference_source(exercise: str, grade_id: str) -> str:
    nb = nbformat.read(REPO / "solutions" / exercise / f"{exercise}.ipynb", as_version=4)
    return next(c.source for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id)


def released_with_reference(folder: Path) -> Path:
    """exercises/mlp/mlp.ipynb alone in ``folder``, its build_model cell holding the reference solution."""
    nb = nbformat.read(REPO / "exercises" / "mlp" / "mlp.ipynb", as_version=4)
    cells = [c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "build_model"]
    assert len(cells) == 1
    cells[0].source = reference_source("mlp", "build_model")
    path = folder / "mlp.ipynb"
    nbformat.write(nb, path)
    return path


def output_text(cell) -> str:
    """Everything a cell showed: stream text, text/plain of displays and results, and errors."""
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("display_data", "execute_result"):
            parts.append(out.get("data", {}).get("text/plain", ""))
        elif out.output_type == "error":
            parts.append(f"{out.ename}: {out.evalue}")
    return "\n".join(parts)


@pytest.mark.slow
def test_released_notebook_is_checked_from_an_empty_folder(outside, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("DEEPGRADE_SEED", "1")
    path = released_with_reference(outside)
    assert sorted(p.name for p in outside.iterdir()) == ["mlp.ipynb"]
    nb = nbformat.read(path, as_version=4)
    cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}
    cells["accuracy"].source = "pass  # trained end to end in tests/test_grading.py; here the other checks"
    NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(outside)}}).execute()
    for name in ("architecture", "parameters"):
        said = output_text(cells[name])
        assert f"PASS {name}" in said, f"{name}: {said}"
        assert "ConfigError" not in said and "FAIL" not in said, said


def check_json(notebook: Path, cwd: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != COURSE_ENV}
    proc = subprocess.run([str(DEEPGRADE), "check", "mlp", str(notebook), "--json", "--seed", "1", "--profile", "smoke"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_deepgrade_check_from_an_empty_folder_gives_the_repositorys_verdicts(outside, graded):
    notebook = released_with_reference(outside)
    away, home = check_json(notebook, outside), graded("mlp", "correct").to_dict()  # the reference, graded in the repo

    def verdicts(report):
        return [(c["name"], c["passed"], c["max_points"]) for c in report["checks"]]

    assert verdicts(away) == verdicts(home), (away["checks"], home["checks"])
    assert [name for name, _, _ in verdicts(away)] == ["architecture", "parameters", "accuracy"]
    assert all(passed for _, passed, _ in verdicts(away)), away
    assert away["max_score"] == home["max_score"]


@pytest.mark.slow
def test_the_wheel_carries_the_bundle_and_no_solution(tmp_path):
    source = tmp_path / "source"  # a copy: building in the repository would leave build/ and *.egg-info there
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "-q", "-w", str(tmp_path / "dist"), str(source)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    [wheel] = (tmp_path / "dist").glob("deepgrade-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        files = {n: archive.read(n) for n in archive.namelist() if not n.endswith("/")}
    prefix = "deepgrade/course_bundle/"
    carried = {n.removeprefix(prefix): data for n, data in files.items() if n.startswith(prefix)}
    assert carried == bundle_listing(), textwrap.shorten(str(sorted(carried)), 500)
    assert {"course.yml", "autograders/test_mlp.py", "exercises/transfer/pretrained_base/saved_model.pb"} <= set(carried)
    assert_holds_no_solution(files)
