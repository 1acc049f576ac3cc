"""`deepgrade lab`: the settings JupyterLab starts with (fast), and the course in a real JupyterLab driven by
Debian's Chromium (slow): a student's Run All, formgrader, a release and the Assignment List."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import nbformat
import pytest

from conftest import REPO
from deepgrade import cli
from deepgrade import lab as lab_module
from deepgrade.errors import ConfigError
from deepgrade.lab import course_id, lab_command, plan

BIN = Path(sys.executable).parent  # the environment's scripts (links kept: the venv's, not the interpreter's)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
SCREENS = Path("/tmp/deepgrade-screens")
CHECKS = ("architecture", "parameters", "accuracy")


@pytest.fixture
def course_copy(tmp_path):
    """A course folder with the real course.yml and nbgrader_config.py (enough for `plan`)."""
    root = tmp_path / "course"
    root.mkdir()
    for name in ("course.yml", "nbgrader_config.py"):
        shutil.copy(REPO / name, root)
    return root


# ---- the settings, without a server ---------------------------------------------------------------------------

def test_allow_root_only_as_root(tmp_path):
    as_root = lab_command(tmp_path, 9000, bindir=BIN, euid=0)
    as_user = lab_command(tmp_path, 9000, bindir=BIN, euid=1000)
    assert "--allow-root" in as_root and "--allow-root" not in as_user
    assert as_user[:2] == [str(BIN / "jupyter"), "lab"]
    assert f"--ServerApp.root_dir={tmp_path}" in as_user and f"--CourseDirectory.root={tmp_path}" in as_user
    assert {"--ServerApp.port=9000", "--ServerApp.port_retries=0", "--ServerApp.open_browser=True"} <= set(as_user)


def test_plan_environment_exchange_and_course_id(course_copy):
    lab = plan(course_copy, port=9123, open_browser=False, extra=["--ServerApp.ip=0.0.0.0"],
               base_env={"PATH": "/usr/bin:/bin", "HOME": "/nowhere"}, euid=0)
    assert lab.root == course_copy.resolve() and lab.port == 9123
    assert lab.env["PATH"].split(os.pathsep)[0] == str(BIN)  # alembic, jupyter and nbgrader: the environment's
    assert (BIN / "alembic").exists()
    assert lab.env["TF_CPP_MIN_LOG_LEVEL"] == "3"
    assert lab.env["JUPYTER_TOKEN"] == lab.token and lab.token not in " ".join(lab.argv)  # not shown by `ps`
    assert lab.url == f"http://localhost:9123/lab?token={lab.token}" and lab.url in lab.banner()
    assert "--allow-root" in lab.argv and "--ServerApp.open_browser=False" in lab.argv
    assert lab.argv[-1] == "--ServerApp.ip=0.0.0.0"
    assert lab.course_id == "deepgrade"  # nbgrader_config.py's CourseDirectory.course_id
    assert lab.exchange == course_copy / ".deepgrade" / "exchange"
    assert stat.S_IMODE(lab.exchange.stat().st_mode) == 0o777  # as nbgrader's release step wants it
    config_dir = Path(lab.env["JUPYTER_CONFIG_PATH"].split(os.pathsep)[0])
    assert config_dir.is_relative_to(course_copy / ".deepgrade")


def test_nbgrader_reads_the_exchange_as_the_assignment_list_does(course_copy, monkeypatch, tmp_path):
    """The Assignment List and formgrader load nbgrader's config files from the server's folder and
    JUPYTER_CONFIG_PATH (not the server's command line): that is where the exchange must be."""
    lab = plan(course_copy, port=9124, base_env={"PATH": "/usr/bin"})
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "no-user-config"))
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", lab.env["JUPYTER_CONFIG_PATH"])
    monkeypatch.chdir(course_copy)
    from nbgrader.apps import NbGrader

    app = NbGrader()
    app.load_config_file()
    assert app.config.Exchange.root == str(lab.exchange)
    assert app.config.CourseDirectory.course_id == "deepgrade"
    assert app.config.CourseDirectory.source_directory == "solutions"  # the course's own file still applies


def test_course_id_from_course_yml_and_an_exchange_the_course_sets(course_copy):
    (course_copy / "nbgrader_config.py").write_text("c = get_config()\nc.Exchange.root = 'shared/exchange'\n")
    assert course_id(course_copy) == "hands-on-deep-learning-with-tensorflow-keras"  # course.yml's name
    lab = plan(course_copy, port=9125, base_env={})
    assert lab.exchange == course_copy / "shared" / "exchange"  # the course's choice is kept
    assert not (course_copy / ".deepgrade" / "exchange").exists()


def test_start_prints_the_url_then_becomes_jupyter_lab(course_copy, monkeypatch, capsys):
    lab = plan(course_copy, port=9128, base_env={"PATH": "/usr/bin"})
    monkeypatch.chdir(course_copy.parent)
    calls = []
    lab_module.start(lab, execute=lambda *args: calls.append((Path.cwd(), *args)))
    assert lab.url in capsys.readouterr().out
    assert calls == [(course_copy.resolve(), lab.argv[0], lab.argv, lab.env)]  # in the course folder


def test_not_a_course_folder(tmp_path):
    with pytest.raises(ConfigError, match="Not a course folder"):
        plan(tmp_path, port=9126)


def test_cli_passes_options_and_extra_arguments(course_copy, monkeypatch):
    started = []
    monkeypatch.setattr(lab_module, "start", started.append)
    code = cli.main(["lab", "--port", "9127", "--no-browser", "--course-dir", str(course_copy),
                     "--ServerApp.ip=0.0.0.0", "--", "--debug"])
    assert code == 0 and len(started) == 1
    lab = started[0]
    assert lab.port == 9127 and lab.root == course_copy.resolve()
    assert "--ServerApp.open_browser=False" in lab.argv and lab.argv[-2:] == ["--ServerApp.ip=0.0.0.0", "--debug"]


# ---- the course in a real JupyterLab ----------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ours(marker: str) -> list[int]:
    """Processes whose environment carries this test's marker: the server, its kernels (own sessions) and jails."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.fixture
def server(tmp_path):
    """`deepgrade lab --no-browser` on a copy of the course; (base URL, token, course folder). Always stopped:
    SIGTERM (JupyterLab shuts its kernels down), then SIGKILL to its group and to every process it left."""
    root = tmp_path / "course"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True)
    for name in filter(None, tracked.stdout.split("\0")):
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    home = tmp_path / "jupyter"
    settings = home / "config" / "lab" / "user-settings" / "@jupyterlab"
    for plugin, values in {"notebook-extension/tracker": {"windowingMode": "none"},  # every cell in the DOM
                           "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False}}.items():
        (settings / f"{plugin}.jupyterlab-settings").parent.mkdir(parents=True, exist_ok=True)
        (settings / f"{plugin}.jupyterlab-settings").write_text(json.dumps(values))
    marker = f"DEEPGRADE_LAB_TEST={uuid.uuid4().hex}"
    env = {**os.environ, "DEEPGRADE_SEED": "1", marker.split("=")[0]: marker.split("=")[1],
           "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_DATA_DIR": str(home / "data"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "PATH": os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p) != BIN)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # `deepgrade lab` sets it
    port = _free_port()
    log = open(tmp_path / "lab.log", "w+")
    proc = subprocess.Popen([str(BIN / "deepgrade"), "lab", "--no-browser", "--port", str(port)], cwd=root,
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base, token = f"http://localhost:{port}", None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "lab.log").read_text()
            found = re.search(r"JupyterLab\s+(\S+/lab\?token=(\w+))", (tmp_path / "lab.log").read_text())
            if found and token is None:
                token = found.group(2)
            if token:
                try:
                    with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as answer:
                        if answer.status == 200:
                            break
                except OSError:
                    pass
            time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not answer within 90 s:\n" + (tmp_path / "lab.log").read_text()[-3000:])
        yield base, token, root
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
        for pid in _ours(marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()


class Notebook:
    """The student's notebook in JupyterLab: cells by index (the file's order), menus, waits."""

    def __init__(self, page, path: Path):
        self.page = page
        self.nb = nbformat.read(path, as_version=4)
        self.checks = {re.search(r'check\("\w+", "(\w+)"', c.source).group(1): i for i, c in enumerate(self.nb.cells)
                       if c.cell_type == "code" and "check(" in c.source}
        self.stub = next(i for i, c in enumerate(self.nb.cells)
                         if c.metadata.get("nbgrader", {}).get("solution") and "def build_model" in c.source)
        self.dialogs: list[str] = []  # what JupyterLab asked in a dialog on its own, answered with its default

    def cell(self, index: int):
        return self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").nth(index)

    def output(self, name: str) -> str:
        """A check cell's output as shown (an HTML verdict spans lines: whitespace made single spaces)."""
        return " ".join(self.cell(self.checks[name]).locator(".jp-OutputArea").inner_text().split())

    def type_into(self, index: int, text: str) -> None:
        editor = self.cell(index).locator(".cm-content")
        editor.click()
        self.page.keyboard.press("Control+a")
        self.page.keyboard.insert_text(text)
        typed = editor.inner_text()
        assert typed.strip() == text.strip(), typed

    def answer_dialogs(self) -> None:
        """A dialog JupyterLab opened on its own (a loaded machine's server or kernel was slow to answer) blocks
        every click: its text is kept (said if the test fails) and its default button pressed."""
        dialog = self.page.locator(".jp-Dialog")
        if dialog.count() and dialog.first.is_visible():
            self.dialogs.append(" ".join(dialog.first.inner_text().split())[:300])
            dialog.first.locator(".jp-Dialog-button.jp-mod-accept").first.click()

    def menu(self, top: str, item: str) -> None:
        self.answer_dialogs()
        self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{top}$")).click()
        self.page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()

    def run_all(self) -> None:
        """Clear the outputs, then Run All; the menu is used again if nothing started within 30 s (a click a
        loaded machine's browser dropped), never more than twice."""
        self.menu("Edit", "Clear Outputs of All Cells")
        for _ in range(2):
            self.menu("Run", "Run All Cells")
            start = time.monotonic()
            while time.monotonic() - start < 30:
                if self.busy() or any(self.output(name).strip() for name in self.checks):
                    return
                self.page.wait_for_timeout(500)

    def busy(self) -> int:
        return self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-InputPrompt", has_text="[*]").count()

    def wait_done(self, timeout: float) -> float:
        """Until the kernel runs nothing and a check cell has an output (bounded); the seconds it took."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            answered = [name for name in self.checks if self.output(name).strip()]
            if not self.busy() and answered:
                return time.monotonic() - start
            self.page.wait_for_timeout(1000)
        prompts = self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-InputPrompt").all_inner_texts()
        shown = {name: self.output(name)[:300] for name in self.checks}
        pytest.fail(f"Run All did not finish within {timeout:.0f} s. Prompts: {prompts}. Check outputs: {shown}. "
                    f"Dialogs answered: {self.dialogs}")

    def show_checks(self) -> None:
        self.cell(self.checks["architecture"] - 1).evaluate("e => e.scrollIntoView({block: 'start'})")


def reference_build_model() -> str:
    solution = nbformat.read(REPO / "solutions" / "mlp" / "mlp.ipynb", as_version=4)
    cell = next(c for c in solution.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "build_model")
    return "\n".join(line for line in cell.source.splitlines() if "### " not in line)


def screenshot(page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / name))
    SCREENS.mkdir(parents=True, exist_ok=True)
    shutil.copy(tmp_path / name, SCREENS / name)


@pytest.mark.slow
def test_the_course_in_jupyterlab(server, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: `make test` installs it (apt-get install chromium).")
    from playwright.sync_api import sync_playwright

    base, token, root = server
    timings = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1300})
            page = context.new_page()
            page.set_default_timeout(60_000)
            began = time.monotonic()
            page.goto(f"{base}/lab/tree/exercises/mlp/mlp.ipynb?token={token}")
            notebook = Notebook(page, root / "exercises" / "mlp" / "mlp.ipynb")
            page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=90_000)
            timings["open"] = time.monotonic() - began

            # A student's correct answer: every check passes, the accuracy check shows its training plot.
            notebook.type_into(notebook.stub, reference_build_model())
            notebook.run_all()

            # Meanwhile (the kernel trains), the instructor's side: formgrader lists the course's assignments
            # (no "Loading" hang: alembic is found), releases one, and the Assignment List shows it.
            began = time.monotonic()
            grader = context.new_page()
            grader.goto(f"{base}/formgrader?token={token}")
            row = grader.locator("tr", has=grader.locator("td", has_text=re.compile("^mlp$")))
            row.wait_for(timeout=60_000)
            assert grader.get_by_text("Loading, please wait...").count() == 0
            assert {"cnn", "rnn", "transfer", "regularization"} <= set(
                grader.locator("tbody td.name").all_inner_texts() or [])
            row.locator("td.release a").click()
            grader.get_by_text("Successfully released 'mlp'.").wait_for(timeout=60_000)
            grader.close()
            notebook.menu("Nbgrader", "Assignment List")
            panel = page.locator(".lm-DockPanel-widget:not(.lm-mod-hidden)").filter(has_text="Released assignments")
            panel.get_by_text("deepgrade", exact=True).first.wait_for(timeout=60_000)
            panel.get_by_text("mlp", exact=True).first.wait_for(timeout=60_000)
            assert "Error fetching courses!" not in panel.inner_text()
            page.locator(".lm-TabBar-tab", has_text="mlp.ipynb").click()
            timings["formgrader and assignment list"] = time.monotonic() - began

            timings["run all (solution)"] = notebook.wait_done(240)
            notebook.show_checks()
            screenshot(page, tmp_path, "lab-pass.png")
            for name in CHECKS:
                assert f"PASS {name}" in notebook.output(name), notebook.output(name)
            accuracy = notebook.cell(notebook.checks["accuracy"])
            assert accuracy.locator(".jp-OutputArea img").count() >= 1, "the accuracy check shows no plot"

            # One layer wrong: every check still answers (Run All goes on past a failing check).
            notebook.type_into(notebook.stub, reference_build_model().replace("Dense(256", "Dense(128", 1))
            notebook.run_all()
            timings["run all (one layer wrong)"] = notebook.wait_done(240)
            notebook.show_checks()
            screenshot(page, tmp_path, "lab-fail.png")
            for name in ("architecture", "parameters"):
                assert f"FAIL {name}" in notebook.output(name), notebook.output(name)
            assert re.search(r"(PASS|FAIL) accuracy", notebook.output("accuracy")), notebook.output("accuracy")
        finally:
            print("timings (s):", {k: round(v, 1) for k, v in timings.items()})
            browser.close()
