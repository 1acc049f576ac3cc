"""Feedback a student learns from: named sections, PASS and FAIL told apart, the layer table, the training
run's plots, the same in `deepgrade check --html`, the check cells and nbgrader's feedback (tests there)."""

import base64
import io
import re

import pytest
from rich.console import Console

from deepgrade.cli import render
from deepgrade.feedback import check_html, check_text, figures, page
from deepgrade.protocol import CheckResult, Curves, LayerRow, Report

ROWS = [LayerRow(position=1, expected="Flatten()", received="Flatten 'flatten'", expected_params=0, received_params=0),
        LayerRow(position=2, expected="Dropout(rate=0.4)", received="Dense 'dense_1' (units=256, activation='relu')",
                 expected_params=0, received_params=65_792, differs=True),
        LayerRow(position=3, expected="Dense(units=10)", received=None, expected_params=2_570)]
CURVES = Curves(history={"loss": [1.0, 0.6, 0.5], "accuracy": [0.6, 0.77, 0.8], "val_loss": [0.58, 0.48, 0.44],
                         "val_accuracy": [0.79, 0.81, 0.84]},
                confusion=[[8, 2, 0], [1, 9, 0], [0, 3, 7]], classes=["T-shirt/top", "Trouser", "Pullover"],
                validation="2,000 training images the grader did not train on")


def report(training=CURVES) -> Report:
    long = "Layer 2 (Dense 'dense_1'): expected Dropout(rate=0.4). Received: Dense. <script>alert(1)</script> " * 5
    return Report(exercise="mlp", profile="smoke", training=training, environment={"seed": 7, "device": "cpu", "backend": "jax",
                  "trained": True}, checks=[
        CheckResult(name="architecture", passed=False, points=0, max_points=2, message=long, layers=ROWS),
        CheckResult(name="parameters", passed=True, points=1, max_points=1, message="269,322 parameters"),
        CheckResult(name="accuracy", passed=True, points=2, max_points=2, message="test accuracy 0.82", trains=True)])


def images(html: str) -> list[bytes]:
    return [base64.b64decode(data) for data in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)]


def test_each_check_is_a_named_section_and_pass_looks_unlike_fail():
    r = report()
    styled = check_html(r, r.checks[0])
    failed, passed = check_html(r, r.checks[0], style=False), check_html(r, r.checks[1], style=False)
    assert "id='check-architecture'" in failed and ">architecture<" in failed and "0 / 2 points" in failed
    assert "dg-fail" in failed and ">FAIL<" in failed and "dg-pass" not in failed
    assert "dg-pass" in passed and ">PASS<" in passed
    styles = dict(re.findall(r"\.dg-check\.dg-(pass|fail) \{[^}]*border-left-color: (#[0-9a-f]+)", styled))
    assert styles["pass"] != styles["fail"]  # and not by colour alone: the badge says it
    assert "white-space: pre-wrap" in styled and "overflow-wrap: anywhere" in styled  # long messages wrap, never cut
    assert "<script>" not in failed and "&lt;script&gt;" in failed and failed.count("expected Dropout") == 5


def test_the_layer_table_marks_the_first_difference_with_the_students_names():
    r = report()
    html = check_html(r, r.checks[0])
    rows = re.findall(r"<tr class='dg-row( dg-differs)?'>(.*?)</tr>", html)
    assert [bool(mark) for mark, _ in rows] == [False, True, False]
    assert "Dense &#x27;dense_1&#x27; (units=256, activation=&#x27;relu&#x27;) &larr; first difference" in rows[1][1]
    assert "<em>missing</em>" in rows[2][1] and "2,570" in rows[2][1] and "65,792" in rows[1][1]
    assert "layer 2: expected Dropout(rate=0.4); yours: Dense 'dense_1'" in check_text(r, r.checks[0])


def test_the_seed_is_shown_only_for_checks_that_trained():
    r = report()
    assert "seed" not in check_text(r, r.checks[0]) and "seed" not in check_html(r, r.checks[1], style=False)
    assert "trained with seed 7 (cpu, jax backend, smoke profile)" in check_text(r, r.checks[2])
    untrained = r.model_copy(update={"environment": {"seed": 7}})  # the model never got to train (a stub)
    assert "seed" not in check_text(untrained, untrained.checks[2])


def test_the_training_run_is_drawn_as_three_png_plots():
    import matplotlib.image

    drawn = figures(CURVES)
    assert [title.split(" ")[0] for title, _ in drawn] == ["Training", "Confusion", "Accuracy"]
    for _, png in drawn:
        pixels = matplotlib.image.imread(io.BytesIO(png), format="png")
        assert png.startswith(b"\x89PNG") and pixels.shape[0] > 100 and pixels.shape[1] > 100 and pixels.std() > 0
    r = report()
    assert len(images(check_html(r, r.checks[2], plots=True))) == 3 and not images(check_html(r, r.checks[2]))
    assert len(images(page(r))) == 3 and not images(page(report(training=None)))


def test_curves_refuse_what_is_not_a_small_training_record():
    with pytest.raises(ValueError, match="3x3 confusion matrix"):
        Curves(history={}, confusion=[[1, 2], [3, 4]], classes=["a", "b", "c"])
    with pytest.raises(ValueError):
        Curves(history={"loss": [0.1] * 1001}, confusion=[[1]], classes=["a"])


def test_a_message_shared_by_every_failed_check_is_said_once():
    """A stub fails every check with the same NotImplementedError: the table says it once."""
    said = "build_model() raised NotImplementedError: replace this line with your code."
    r = Report(exercise="mlp", profile="smoke", environment={"seed": 3}, checks=[
        CheckResult(name=n, passed=False, points=0, max_points=1, message=said, trains=n == "accuracy")
        for n in ("architecture", "parameters", "accuracy")])
    console = Console(record=True, width=200)
    render(r, console)
    out = console.export_text()
    assert out.count("NotImplementedError") == 1 and out.count("the same error as architecture (above)") == 2
    assert "seed" not in out  # nothing trained


@pytest.mark.slow
def test_a_real_grade_points_both_layer_checks_at_the_same_layer_and_draws_its_training(graded):
    r = graded("mlp", "wrong_layer")
    architecture, parameters, accuracy = (r.check(n) for n in ("architecture", "parameters", "accuracy"))
    assert architecture.first_difference().position == parameters.first_difference().position == 3
    assert parameters.message.startswith("Layer 3 (Dense 'dense_1'): expected 0 parameters (as Dropout(rate=0.4) has)")
    assert accuracy.trains and not architecture.trains and r.training is not None
    assert len(r.training.history["loss"]) == 3 and sum(map(sum, r.training.confusion)) == 10_000
    assert len(images(page(r))) == 3


@pytest.mark.slow
def test_check_shows_each_step_on_a_terminal_and_writes_the_feedback_page(make_submission, tmp_path):
    """On a terminal `deepgrade check` draws its progress: the sandbox, loading, each epoch, the evaluation;
    `--html` writes the feedback page."""
    import os
    import pty
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "feedback.html"
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "160", "TERM": "xterm"}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "deepgrade"), "check", "mlp",
                             str(make_submission("mlp", "no_dropout")), "--seed", "1", "--html", str(out)],
                            stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env=env, close_fds=True)
    os.close(follower)
    seen = bytearray()
    while True:
        try:
            chunk = os.read(leader, 1 << 16)
        except OSError:  # the terminal closed: the command ended
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    assert proc.wait(timeout=300) == 1  # a check failed
    text = seen.decode(errors="replace")
    for step in ("running the notebook in its sandbox", "loading the model", "training: epoch 1/3",
                 "training: epoch 3/3", "measuring accuracy on the test set", "FAIL", "feedback written to"):
        assert step in text, step
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>") and html.count("class='dg-feedback dg-check") == 3
    assert "dg-differs" in html and len(images(html)) == 3 and "trained with seed 1" in html


@pytest.mark.slow
def test_the_feedback_page_in_a_browser(graded, tmp_path):
    """Debian's Chromium shows the feedback of a real grade: FAIL and PASS in different colours, the first
    difference highlighted, the three plots loaded. The screenshot is kept for the closing note."""
    import shutil
    from pathlib import Path

    from playwright.sync_api import sync_playwright


    r = graded("mlp", "wrong_layer")
    path = tmp_path / "feedback.html"
    path.write_text(page(r, "deepgrade check mlp: bob's notebook"))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        try:
            view = browser.new_page(viewport={"width": 1100, "height": 900})
            view.goto(path.as_uri())
            badge = "el => getComputedStyle(el).backgroundColor"
            fail = view.eval_on_selector("#check-architecture .dg-badge", badge)
            passed = view.eval_on_selector(".dg-pass .dg-badge", badge)
            assert fail != passed and view.inner_text("#check-architecture .dg-badge") == "FAIL"
            marked = view.eval_on_selector("#check-architecture tr.dg-differs td", badge)
            assert marked not in ("rgba(0, 0, 0, 0)", "transparent")
            assert "first difference" in view.inner_text("#check-architecture tr.dg-differs")
            widths = view.eval_on_selector_all(".dg-plots img", "imgs => imgs.map(i => i.naturalWidth)")
            assert len(widths) == 3 and min(widths) > 100
            shot = tmp_path / "feedback.png"
            view.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    keep = Path("/tmp/deepgrade-screens")
    keep.mkdir(exist_ok=True)
    shutil.copy(shot, keep / "feedback.png")


def test_the_curves_carry_loss_and_accuracy_only_and_no_infinity():
    """The student's compile settings name the metrics: their names do not travel, nor values JSON cannot hold."""
    import json
    import math
    from types import SimpleNamespace

    import numpy as np

    from deepgrade.grader.plugin import curves_of
    from deepgrade.grader.training import Task, _extend

    history: dict = {}
    _extend(history, {"loss": [2.0], "accuracy": [0.5], "val_loss": [1.5], "val_accuracy": [0.6]})  # a warm-up
    _extend(history, {"loss": [math.inf, 1.0], "sparse_categorical_accuracy": [0.7, 0.8], "x" * 80: [1, 2],
                      **{f"m{i}": [0, 0] for i in range(20)}})  # the student's own metrics after it
    assert {len(v) for v in history.values()} == {3}  # epoch by epoch, whatever each fit reported
    result = SimpleNamespace(history=history, confusion=np.eye(10, dtype=int), monitored_on="here")
    curves = curves_of(result, Task())
    assert set(curves.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert curves.history["loss"] == [2.0, None, 1.0] and curves.history["val_loss"] == [1.5, None, None]
    assert curves.history["accuracy"] == [0.5, None, None]  # the first accuracy metric found, as "accuracy"
    assert "Infinity" not in json.dumps(curves.model_dump()) and curves.per_class_accuracy() == [1.0] * 10


def test_check_cells_say_a_broken_options_function_as_the_checks_message(tmp_path):
    """fit_options() that raises or returns no dict is the student's error, said by the checks, not a traceback."""
    from deepgrade.course import load_course
    from deepgrade.notebook_checks import _build

    ex = load_course().exercise("regularization")

    def build_model():
        import keras

        return keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])

    def fit_options():
        return undefined_name  # noqa: F821 - the student's mistake

    submission, _ = _build(ex, build_model, None, {"fit_options": fit_options}, tmp_path)
    assert submission.options_error.startswith("fit_options() raised NameError: name 'undefined_name' is not defined")
    submission, _ = _build(ex, build_model, lambda: ("validation_split", 0.2), {}, tmp_path)
    assert "returned a tuple; expected a dict of options" in submission.options_error


def test_the_kernels_grader_restarts_when_a_setting_it_reads_at_start_changes(monkeypatch):
    from deepgrade import notebook_checks
    from deepgrade.course import load_course

    started = []

    class Worker:
        def __init__(self, course, jailed):
            started.append(course.root)
            self.closed = False

        def start(self):
            return self

        def close(self):
            self.closed = True

    monkeypatch.setattr("deepgrade.grader.worker.GraderWorker", Worker)
    session, course = notebook_checks._Session(), load_course()
    monkeypatch.delenv("DEEPGRADE_PROFILE", raising=False)
    first = session.grader(course)
    assert session.grader(course) is first and len(started) == 1
    monkeypatch.setenv("DEEPGRADE_PROFILE", "full")  # %env DEEPGRADE_PROFILE=full in a later cell
    second = session.grader(course)
    assert second is not first and first.closed and len(started) == 2
    session.close()
    assert second.closed
