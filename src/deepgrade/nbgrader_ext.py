"""nbgrader integration: the trusted grader fills in the verdict of every test cell.

``configure(c)`` (called from the course's ``nbgrader_config.py``) points
nbgrader at ``solutions/`` (source) and ``exercises/`` (release) and replaces
nbgrader's in-kernel ``Execute`` step of ``nbgrader autograde`` with
:class:`TrustedGrade`: the submission runs in deepgrade's sandbox, the
trusted grader computes every check, and each test cell (``grade_id`` = the
check's name) gets the grader's verdict as its output. nbgrader then scores
the cells as usual (an error output is 0 points), so the gradebook holds the
same points as ``deepgrade check``, and nothing the student's code does in a
kernel can change them.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import nbformat
from nbconvert.preprocessors import Preprocessor
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Bool, Integer, Unicode

from .batch.pool import grade_here
from .batch.store import ResultStore, grade_key
from .course import find_course_root, is_test_cell, load_course
from .errors import DeepgradeError, said
from .protocol import CheckResult, Report


def verdict_output(result: CheckResult) -> NotebookNode:
    """The output a test cell gets: a stdout line when passed, an error (0 points in nbgrader) when not."""
    header = f"{result.name}: {result.points:g} / {result.max_points:g}"
    if result.passed:
        return nbformat.v4.new_output("stream", name="stdout", text=f"PASS {header}: {result.message}\n")
    return nbformat.v4.new_output(
        "error", ename="CheckFailed", evalue=result.message,
        traceback=[f"FAIL {header}", *result.message.splitlines()],
    )


def fill_test_cells(nb: NotebookNode, report: Report) -> None:
    from .feedback.html import trained

    by_name = {c.name: c for c in report.checks}
    env = report.environment
    notes = report.notebook_notes()
    for cell in nb.cells:
        if not is_test_cell(cell):
            continue
        name = cell.metadata["nbgrader"].get("grade_id")
        points = float(cell.metadata["nbgrader"].get("points", 0))
        result = by_name.get(name) or CheckResult(
            name=name, passed=False, points=0.0, max_points=points,
            message=f"deepgrade has no check named {name!r} for {report.exercise!r}.")
        cell.outputs = [verdict_output(result)]
        if notes:  # said once, under the first check
            cell.outputs.append(nbformat.v4.new_output("stream", name="stdout", text="\n".join(notes) + "\n"))
            notes = []
        if env.get("isolation", "bubblewrap") != "bubblewrap":
            cell.outputs.append(_unisolated_note(env["isolation"]))
        if result.trains and trained(report):  # the seed means something only here
            cell.outputs.append(nbformat.v4.new_output(
                "stream", name="stdout",
                text=f"(graded with seed {env['seed']} on {env.get('device')}, profile {report.profile})\n"))
    nb.metadata["deepgrade"] = report.dump()


class TrustedGrade(Execute):
    """Grade the (sanitized) submission with deepgrade's trusted grader; write verdicts into test cells.

    Assignments that are not exercises in course.yml (the nbgrader quizzes) are executed by nbgrader's own
    Execute step, unchanged.
    """

    profile = Unicode("", help="deepgrade profile (smoke or full); empty: chosen from the device").tag(config=True)
    allow_unisolated = Bool(None, allow_none=True, help=(
        "grade where no sandbox can be made (student code then runs with your rights); None: course.yml's "
        "allow_unisolated. Every grade says it was not isolated.")).tag(config=True)
    seed = Integer(None, allow_none=True, help="training seed; None: a fresh seed per submission").tag(config=True)
    course = Unicode("", help="folder holding course.yml; empty: found from the working directory").tag(config=True)
    reuse_failed = Bool(False, help=(
        "also take a grade the grader could not finish (zero, with the reason) from the store: set by "
        "`deepgrade autograde` for its own gradebook writes; plain nbgrader grades those again")).tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict, retries=None) -> tuple[NotebookNode, dict]:
        info = resources.get("nbgrader", {})
        exercise = info.get("assignment", "")
        student = info.get("student", "?")
        try:
            course = load_course(self.course or find_course_root())
        except DeepgradeError as exc:
            return self._failed(nb, resources, exercise, student, str(exc))
        if exercise not in course.course.exercises:  # a quiz: answers from the jail, checked here
            return self._quiz(course, nb, resources, exercise, student)
        profile = self.profile or None
        store = ResultStore.of(self._course_dir())
        key = grade_key(nb, course, exercise, profile=profile, seed=self.seed)
        report = store.get(key, failed=self.reuse_failed)
        reused = report is not None
        if report is None:
            try:
                with tempfile.TemporaryDirectory(prefix="deepgrade-nbgrader-") as tmp:
                    path = Path(tmp) / f"{info.get('notebook', 'submission')}.ipynb"
                    nbformat.write(nb, path)
                    report = grade_here(course, exercise, path, profile=profile, seed=self.seed,
                                        allow_unisolated=self.allow_unisolated, store=store.folder)
            except Exception as exc:  # noqa: BLE001 - any failure is this notebook's grader failure; the batch goes on
                why = str(exc) if isinstance(exc, DeepgradeError) else f"the grader failed ({said(exc)})"
                return self._failed(nb, resources, exercise, student, why)
            if not report.environment.get("grader_errors"):
                store.put(key, report)
        fill_test_cells(nb, report)
        self.log.info("deepgrade %s/%s: %g / %g (seed %s%s)", student, exercise, report.score, report.max_score,
                      report.environment.get("seed"), ", a finished grade reused" if reused else "")
        folder = resources.get("metadata", {}).get("path")
        if folder:
            Path(folder, f"{info.get('notebook', 'submission')}.deepgrade.json").write_text(
                json.dumps(report.dump(), indent=2) + "\n")
        return nb, resources

    def _course_dir(self) -> Path:
        from nbgrader.coursedir import CourseDirectory

        return Path(CourseDirectory(config=self.config).root)

    def _quiz(self, course, nb: NotebookNode, resources: dict, exercise: str, student: str):
        """A quiz (any assignment that is not an exercise): the student's cells run in the jail, which sends back
        only the values the test cells use, as plain data; the test cells (the instructor's, restored by
        nbgrader) run here on those values alone. Nothing of the student's runs in this process."""
        from .grader.isolated import isolation_for
        from .sandbox import run_for_values

        try:
            isolation = isolation_for(course, others=True, allow_unisolated=self.allow_unisolated)
            tests = [cell for cell in nb.cells if is_test_cell(cell)]
            names = sorted(set().union(*(free_names(cell.source) for cell in tests)))
            with tempfile.TemporaryDirectory(prefix="deepgrade-nbgrader-") as tmp:
                path = Path(tmp) / "submission.ipynb"
                nbformat.write(nb, path)
                ran = run_for_values(path, names)
        except Exception as exc:  # noqa: BLE001 - this notebook's failure; the batch goes on
            why = str(exc) if isinstance(exc, DeepgradeError) else f"the grader failed ({said(exc)})"
            return self._failed(nb, resources, exercise, student, why)
        for cell in tests:
            cell.outputs = [quiz_verdict(cell.source, ran)]
            if not isolation.ok:
                cell.outputs.append(_unisolated_note(isolation.label))
        nb.metadata["deepgrade"] = {"exercise": exercise, "environment": {"isolation": isolation.label}}
        self.log.info("deepgrade %s/%s: quiz checked (%s)", student, exercise, isolation.label)
        return nb, resources

    def _failed(self, nb: NotebookNode, resources: dict, exercise: str, student: str, why: str):
        """Record a grader failure for this notebook: every test cell says so (0 points); the batch goes on."""
        self.log.error("deepgrade could not grade %s/%s: %s", student, exercise, why)
        report = Report(exercise=exercise, profile=self.profile or "?", checks=[], environment={"grader_error": why})
        for cell in nb.cells:
            if is_test_cell(cell):
                cell.outputs = [nbformat.v4.new_output(
                    "error", ename="GraderError", evalue=why,
                    traceback=["The grader failed; this is not a problem with your work.", why])]
        nb.metadata["deepgrade"] = report.dump()
        return nb, resources


def free_names(source: str) -> set[str]:
    """The names a test cell reads without defining them itself (a quiz's ``answer_3``)."""
    import ast
    import builtins

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    bound = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            bound.add(node.name)
    read = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return read - bound - set(dir(builtins))


def quiz_verdict(source: str, ran) -> NotebookNode:
    """Run one of the instructor's test cells here, on the student's values (plain data) only.

    A failing verdict says which answer is wrong and the format expected, never the expected value: only the
    messages of ``answer_check`` (written never to hold the answer) are shown; any other exception (an
    instructor's ``assert answer_1 == 42, ...``) is named without its text, which may hold the answer."""
    from .quiz import AnswerFormatError, WrongAnswer, expected_formats

    def failed(ename: str, message: str) -> NotebookNode:
        return nbformat.v4.new_output("error", ename=ename, evalue=message, traceback=[f"{ename}: {message}"])

    if ran.failure:
        return nbformat.v4.new_output("error", ename="GraderError", evalue=ran.failure, traceback=[ran.failure])
    namespace = dict(ran.values)
    names = sorted(free_names(source))
    formats = expected_formats(source)

    def expected(name: str) -> str:
        return f" Expected {formats[name]}." if name in formats else ""

    problems = [ran.errors[name] + expected(name) for name in names if name in ran.errors]
    if problems:
        return nbformat.v4.new_output("error", ename="AnswerFormatError", evalue=problems[0], traceback=problems)
    missing = [name for name in names if name not in namespace]
    if missing:
        return failed("AnswerFormatError", f"{missing[0]} has no value after your notebook ran: the cell that assigns "
                                           f"it is missing, still the stub, or raised an error.{expected(missing[0])}")
    try:
        exec(compile(source, "<test cell>", "exec"), namespace)  # the instructor's cell, on data only
    except (AnswerFormatError, WrongAnswer) as exc:  # answer_check's own: what is wrong, never the answer
        return failed(type(exc).__name__, str(exc))
    except Exception as exc:  # noqa: BLE001 - a failed check is this cell's verdict; its text may hold the answer
        which = [n for n in names if n in formats] or names
        return failed(type(exc).__name__, f"{', '.join(which) or 'the answer'}: not right (the check raised "
                                          f"{type(exc).__name__}; its text is not shown, as it may hold the answer)."
                                          f"{expected(which[0]) if len(which) == 1 else ''}")
    return nbformat.v4.new_output("stream", name="stdout", text="PASS\n")


def _unisolated_note(label: str) -> NotebookNode:
    from .sandbox.jail import why_not_isolated

    return nbformat.v4.new_output("stream", name="stdout", text=f"(graded without isolation: {why_not_isolated(label)})\n")


class FeedbackView(Preprocessor):
    """``nbgrader generate_feedback``: what a student reads of a graded notebook, and nothing more.

    Each test cell's source becomes one comment line naming its check: nbgrader restores the instructor's
    test cells, hidden tests included, into the graded notebook (nbgrader#917), and a quiz's test cell holds
    its answer; none of that reaches the feedback. An exercise's test cells show deepgrade's verdict (the same
    HTML as ``deepgrade check --html`` and the notebook's check cells: the check, its points, the message, the
    layer table, the training run's plots); a quiz's show PASS, or FAIL with the format problem when it was
    one, never the instructor's assertion (which may quote the answer).
    """

    enabled = Bool(True, help="rewrite test cells for the feedback (nbconvert runs a preprocessor only when enabled)"
                   ).tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        from .feedback import check_html, check_text
        from .feedback.html import first_training_check

        data = nb.metadata.get("deepgrade") or {}
        try:
            report = Report.from_dict(data) if data.get("checks") else None
        except ValueError:
            report = None
        plotted = first_training_check(report) if report is not None else None
        for cell in nb.cells:
            if not is_test_cell(cell):
                continue
            info = cell.metadata["nbgrader"]
            name = info.get("grade_id", "?")
            points = float(info.get("points", 0))
            cell.source = f"# Check \"{name}\" ({points:g} point{'' if points == 1 else 's'}), graded by deepgrade"
            result = report.check(name) if report is not None else None
            if result is not None:
                cell.outputs = [nbformat.v4.new_output("display_data", data={
                    "text/html": check_html(report, result, plots=name == plotted),
                    "text/plain": check_text(report, result)})]
                if report.environment.get("isolation", "bubblewrap") != "bubblewrap":
                    cell.outputs.append(_unisolated_note(report.environment["isolation"]))
            else:
                cell.outputs = [_safe_output(output) for output in cell.outputs]
        return nb, resources


SAFE_ERRORS = ("AnswerFormatError", "WrongAnswer", "GraderError")  # deepgrade's own messages: never the answer


def _safe_output(output: NotebookNode) -> NotebookNode:
    """A test cell's output as the feedback may show it: PASS lines and deepgrade's own messages as they are;
    any other failure only as "not correct" (an instructor's assertion may quote the answer)."""
    if output.get("output_type") == "error":
        text = output.get("evalue", "") if output.get("ename") in SAFE_ERRORS else "this answer is not correct."
        return nbformat.v4.new_output("stream", name="stdout", text=f"FAIL: {text}\n")
    if output.get("output_type") == "stream" and output.get("name") == "stdout":
        return output
    return nbformat.v4.new_output("stream", name="stdout", text="(output left out of the feedback)\n")


def configure(c) -> None:
    """Settings for a deepgrade course; call from nbgrader_config.py as ``configure(get_config())``."""
    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import Execute

    c.CourseDirectory.source_directory = "solutions"
    c.CourseDirectory.release_directory = "exercises"
    # nbgrader's own pipeline, with its in-kernel Execute step replaced by the trusted grader.
    default = Autograde.class_traits()["autograde_preprocessors"].make_dynamic_default()
    c.Autograde.autograde_preprocessors = [TrustedGrade if step is Execute else step for step in default]
    # Feedback: test cells show deepgrade's verdicts, never their source (hidden tests, quiz answers).
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import GetGrades

    c.GenerateFeedback.preprocessors = [GetGrades, FeedbackView, CSSHTMLHeaderPreprocessor]
    # deepgrade's template is named `feedback`, as nbgrader's is: nbgrader's API (formgrader's "Generate
    # Feedback") forces that name, and deepgrade's folder comes first; nbgrader's own templates stay reachable.
    import nbgrader

    c.HTMLExporter.extra_template_basedirs = [
        str(Path(__file__).parent / "feedback" / "templates"),
        str(Path(nbgrader.__file__).parent / "server_extensions" / "formgrader" / "templates")]
    # Stubs say what to do instead of the bare default.
    c.ClearSolutions.code_stub = {
        "python": "# YOUR CODE HERE\nraise NotImplementedError(\"replace this line with your code\")",
    }
