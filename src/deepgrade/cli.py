"""The ``deepgrade`` command: thin adapters over the library; errors become exit codes here only.

Exit codes: 0 success (every check passed), 1 a check failed or the student's
code failed, 2 a configuration or usage mistake, 3 the grader itself failed
(including any exception deepgrade did not expect).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from .errors import ConfigError, DeepgradeError, GraderError, first_line

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Auto-graded exercises and quizzes for a hands-on TensorFlow/Keras course.")
err = Console(stderr=True, soft_wrap=True)

CourseOpt = Annotated[Path | None, typer.Option("--course", help="course.yml or its folder (default: found upwards)")]


BackendOpt = Annotated[str | None, typer.Option(help=(
    "the grader's Keras backend: tensorflow, jax or torch (default: $DEEPGRADE_BACKEND, else $KERAS_BACKEND, else "
    "tensorflow); the notebook keeps its own"))]


def _use_backend(backend: str | None) -> None:
    """The grader's backend for every grader this command starts (checked now: a typo is said at once)."""
    from .grader.backend import ENV, grader_backend

    if backend:
        try:
            os.environ[ENV] = grader_backend(backend)
        except DeepgradeError as exc:
            said = exc.message.removeprefix("--backend: ")
            raise typer.BadParameter(f"{said} {exc.tip}" if exc.tip else said, param_hint="--backend") from None


def _this_process_on(backend: str, option: str) -> None:
    """Keras in this process on ``backend`` (an option that trains here, not in a grader worker), before Keras is
    imported; a clear error where it already runs on another."""
    import sys

    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != backend:
            raise typer.BadParameter(f"expected Keras on {backend} in this process. Received: Keras already on "
                                     f"{keras.backend.backend()}. Set KERAS_BACKEND={backend}.", param_hint=option)
        return
    os.environ["KERAS_BACKEND"] = backend


def _check_profile(profile: str | None) -> None:
    if profile not in (None, "smoke", "full"):
        raise typer.BadParameter(f"expected smoke or full. Received: {profile!r}.", param_hint="--profile")


def _course(path: Path | None):
    from .course import load_course

    return load_course(path)


@app.command()
def check(
    exercise: Annotated[str, typer.Argument(help="exercise id from course.yml, e.g. mlp")],
    notebook: Annotated[Path, typer.Argument(help="your notebook, e.g. exercises/mlp/mlp.ipynb")],
    as_json: Annotated[bool, typer.Option("--json", help="print the grade as JSON")] = False,
    profile: Annotated[str | None, typer.Option(help="smoke (CPU) or full (GPU); default: from the device")] = None,
    seed: Annotated[int | None, typer.Option(help="training seed, to reproduce a grade")] = None,
    html: Annotated[Path | None, typer.Option(help="also write the feedback (checks, layer table, plots) as a web page")] = None,
    backend: BackendOpt = None,
    course: CourseOpt = None,
) -> None:
    """Grade NOTEBOOK for EXERCISE: one row per check; exit 0 only when every check passes."""
    from .grader import grade_notebook

    _check_profile(profile)
    _use_backend(backend)
    loaded = _course(course)
    if not notebook.is_file():
        raise typer.BadParameter(f"expected an existing .ipynb file. Received: {notebook}.", param_hint="NOTEBOOK")
    with _Steps(err) as steps:
        report = grade_notebook(loaded, exercise, notebook, profile=profile, seed=seed, on_progress=steps.show)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        render(report)
    if html is not None:
        from .feedback import page

        html.write_text(page(report, f"deepgrade check {exercise}: {notebook.name}"))
        err.print(f"feedback written to {escape(str(html))}", highlight=False)
    raise typer.Exit(0 if report.passed else 1)


class _Steps:
    """``deepgrade check``'s progress on stderr, one step after another (sandbox, load, training with its
    epochs, evaluation), drawn live on a terminal and left out elsewhere (logs stay clean)."""

    def __init__(self, console: Console):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.live = console.is_terminal
        self.bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=console, transient=True)
        self.task = None

    def __enter__(self) -> "_Steps":
        if self.live:
            self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.live:
            self.bar.stop()

    def show(self, said) -> None:
        if not self.live:
            return
        text = escape(said.text())
        if self.task is None:
            self.task = self.bar.add_task(text, total=None)
        total = said.epochs if said.stage == "train" and said.epochs else None
        self.bar.update(self.task, description=text, total=total, completed=said.epoch or 0, refresh=True)


@app.command()
def autograde(
    assignments: Annotated[list[str], typer.Argument(help="the assignments (exercise ids of course.yml), e.g. mlp cnn")],
    workers: Annotated[int | None, typer.Option(min=1, help="local worker processes (default: one per core)")] = None,
    scheduler: Annotated[str | None, typer.Option(help="address of an existing Dask scheduler, e.g. tcp://host:8786")] = None,
    student: Annotated[list[str] | None, typer.Option(help="grade only this student (repeatable)")] = None,
    profile: Annotated[str | None, typer.Option(help="smoke or full; default: from each worker's device")] = None,
    seed: Annotated[int | None, typer.Option(help="one training seed for every submission (default: a fresh one each)")] = None,
    allow_unisolated: Annotated[bool, typer.Option("--allow-unisolated", help=(
        "grade even where no sandbox can be made (student code then runs with your rights); every grade says so"))] = False,
    course_dir: Annotated[Path, typer.Option(help="the nbgrader course folder (holding nbgrader_config.py)")] = Path("."),
    out: Annotated[Path | None, typer.Option(help="folder for summary.csv and summary.png (default: reports/ASSIGNMENT)")] = None,
    backend: BackendOpt = None,
    course: CourseOpt = None,
) -> None:
    """Grade every submission of each ASSIGNMENT in parallel into nbgrader's gradebook; print the class summary."""
    from .batch.autograde import autograde_all as run
    from .batch.gradebook import Classroom

    _check_profile(profile)
    _use_backend(backend)
    if not course_dir.is_dir():
        raise typer.BadParameter(f"expected the nbgrader course folder. Received: {course_dir}.", param_hint="--course-dir")
    classroom = Classroom(course_dir, _course(course) if course else None, profile=profile, seed=seed,
                          allow_unisolated=allow_unisolated or None)
    outcomes = run(classroom, assignments, workers=workers, scheduler=scheduler, students=student or None, out=out,
                   console=Console(), allow_unisolated=allow_unisolated or None)
    unrecorded = [f"{row.student}/{name}" for name, outcome in outcomes.items() for row in outcome.summary.rows
                  if row.recorded]
    if unrecorded:
        raise GraderError(f"Not recorded in the gradebook: {', '.join(unrecorded)} (see the table above).")


@app.command()
def sandbox(
    table: Annotated[bool, typer.Option("--table", help="print the limits table (markdown), as in the README")] = False,
) -> None:
    """Say whether this machine can make the bubblewrap jails grading needs, and with which limits."""
    from .sandbox import isolation, policy

    if table:
        print(policy.table(), end="")
        return
    here = isolation()
    console = Console()
    if here.ok:
        console.print("[green]isolated[/green]: bubblewrap jails work here.")
    else:
        console.print(f"[red]not isolated[/red]: {escape(here.reason)}. `nbgrader autograde` refuses to grade "
                      "unless you opt out (allow_unisolated in course.yml); `deepgrade check` still grades, marked.")
    console.print(policy.table(), markup=False)


@app.command()
def data(
    source: Annotated[Path, typer.Option(help="folder holding the four Fashion-MNIST .gz files")] = Path(
        "/usr/share/datasets/fashion-mnist"),
) -> None:
    """Place Fashion-MNIST in the Keras cache (from Debian's dataset-fashion-mnist) and verify it."""
    from .grader import data as dataset

    folder = dataset.install(source)
    print(f"Fashion-MNIST verified in {folder}")


@app.command()
def validate(course: CourseOpt = None) -> None:
    """Validate course.yml and report every mistake with its key path."""
    loaded = _course(course)
    names = ", ".join(loaded.course.exercises)
    print(f"{loaded.path}: valid ({len(loaded.course.exercises)} exercise(s): {names})")


@app.command()
def calibrate(
    exercise: Annotated[str, typer.Argument(help="exercise id from course.yml")],
    seeds: Annotated[int, typer.Option(min=1, help="how many seeds (first-seed..) to train each model under")] = 10,
    profile: Annotated[str | None, typer.Option(help="smoke or full; default: from the device")] = None,
    write: Annotated[bool, typer.Option(help=(
        "keep the trainings in the section's records and write the section into docs/calibration.md"))] = True,
    workers: Annotated[int, typer.Option(min=1, help="grader workers training side by side (they may share a GPU)")] = 1,
    models: Annotated[Path | None, typer.Option(help=(
        "keep the built models here, and reuse them (grade on a machine that cannot build them)"))] = None,
    first_seed: Annotated[int, typer.Option(min=0, help="the first seed (extend a run: --first-seed 200)")] = 0,
    only: Annotated[list[str] | None, typer.Option(help=(
        "train only this model ('reference solution', a baseline's or an answer's name); repeat for more"))] = None,
    fresh: Annotated[bool, typer.Option(help="drop the section's earlier records instead of adding to them")] = False,
    render: Annotated[bool, typer.Option(help=(
        "train nothing: recompute the section from its records at course.yml's thresholds"))] = False,
    batch: Annotated[int, typer.Option(min=0, help=(
        "train this many seeds of a model at once, in this process, on JAX (one vmapped program; 0: one grade "
        "per seed on the grader workers)"))] = 0,
    budget: Annotated[float | None, typer.Option(min=0, help=(
        "seconds: no training starts after them (the records keep every training that ended)"))] = None,
    backend: BackendOpt = None,
    course: CourseOpt = None,
) -> None:
    """Train the reference solution, the naive baselines and the answers students give (course.yml) under N seeds,
    one training each, adding them to the section's records (docs/calibration/); report, from all records, the
    reference's false-fail rate, each baseline's false-pass rate and how often each answer gets its verdict under
    the retry rule; propose thresholds."""
    from . import calibrate as cal
    from .grader import default_profile

    _check_profile(profile)
    _use_backend(backend)
    if batch:
        from .grader.backend import ENV

        _this_process_on(os.environ.get(ENV) or "jax", "--batch")  # _use_backend put --backend there
    loaded = _course(course)
    profile = profile or default_profile()
    if render:
        given = [name for name, value in (("--only", only), ("--fresh", fresh), ("--first-seed", first_seed),
                                          ("--models", models), ("--batch", batch), ("--budget", budget)) if value]
        if given:
            raise ConfigError(f"calibrate --render trains nothing: expected no training options. Received: "
                              f"{', '.join(given)}. Drop them, or drop --render to train.")
        results = cal.render(loaded, exercise, profile)
    else:
        results = [cal.calibrate(loaded, exercise, seeds, profile,
                                 progress=lambda line: err.print(line, markup=False, highlight=False), workers=workers,
                                 models=models, first_seed=first_seed, only=only, fresh=fresh, record=write,
                                 batch=batch, budget=budget)]
    for result in results:
        print(cal.markdown(result))
        if write:
            cal.write_section(loaded.root / "docs" / "calibration.md", result)
            print(f"written to {loaded.root / 'docs' / 'calibration.md'}")


@app.command()
def pretrain(
    exercise: Annotated[str, typer.Argument(help="the transfer exercise whose base to build, e.g. transfer")] = "transfer",
    out: Annotated[Path | None, typer.Option(help="folder for the SavedModel (default: the handle in course.yml)")] = None,
    course: CourseOpt = None,
) -> None:
    """Train the course's feature extractor on the source task of course.yml; write it as a SavedModel."""
    from .pretrain import pretrain as build

    loaded = _course(course)
    made = build(loaded, exercise, out)
    print(f"pretrained base written to {made['path']}: {made['parameters']:,} parameters, trained on "
          f"{made['images']:,} images of classes {made['source_classes']} for {made['epochs']} epochs "
          f"(seed {made['seed']}, {made['train_seconds']} s); source-task test accuracy "
          f"{made['source_test_accuracy']:.4f}; weights sha256 {made['weights_sha256'][:16]}...")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="folder for the demo course (wiped first)")] = Path("build/demo"),
    profile: Annotated[str | None, typer.Option(help="smoke or full; default: from the device")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="local worker processes (default: one per core)")] = None,
    course: CourseOpt = None,
) -> None:
    """Release every exercise, grade four sample students each in parallel, print the class summaries and the
    gradebook, write feedback."""
    from .demo import run_course_demo

    run_course_demo(_course(course), out, profile=profile, workers=workers)


@app.command()
def quiz(
    name: Annotated[str | None, typer.Argument(help="question bank in quizzes/, e.g. pooling")] = None,
    student: Annotated[str | None, typer.Option(help="your student id: it seeds your variant")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the variant with its answers (for instructors)")] = False,
    html: Annotated[Path | None, typer.Option(help="write a self-contained web page of the quiz to this file")] = None,
    nbgrader: Annotated[bool, typer.Option("--nbgrader", help="write the nbgrader source notebook solutions/quiz_NAME/")] = False,
    course: CourseOpt = None,
) -> None:
    """Take a self-check quiz in the terminal (or export it as JSON or a web page)."""
    from .course import find_course_root
    from .quiz import available, load_bank, make_quiz

    root = (course.parent if course and course.is_file() else course) or find_course_root()
    if name is None:
        print("quizzes: " + ", ".join(available(root)))
        return
    if nbgrader:
        from .quiz import NBGRADER_VARIANT, write_source

        path = write_source(make_quiz(load_bank(name, root), student or NBGRADER_VARIANT), root / "solutions")
        print(f"wrote {path}; release it with `nbgrader generate_assignment {path.parent.name} --force`")
        return
    if not student:
        raise typer.BadParameter("expected your student id, e.g. --student alice. Received: nothing.",
                                 param_hint="--student")
    variant = make_quiz(load_bank(name, root), student)
    if as_json:
        print(json.dumps(variant.to_dict(), indent=2))
    elif html:
        from .quiz import write_html

        write_html(variant, html)
        print(f"wrote {html} ({len(variant.variants)} questions for {variant.student})")
    else:
        from .quiz import run_in_terminal

        run_in_terminal(variant)


@app.command()
def bundle(
    check_only: Annotated[bool, typer.Option("--check", help="only say whether the packaged course is current")] = False,
    course: CourseOpt = None,
) -> None:
    """Copy the course (course.yml, autograders, the release) into the package, for released notebooks anywhere."""
    from .course import BUNDLE_DIR, bundle_drift, write_bundle

    root = _course(course).root
    if check_only:
        drift = bundle_drift(root)
        print("\n".join(drift) if drift else f"{BUNDLE_DIR} is current with {root}")
        raise typer.Exit(1 if drift else 0)
    written = write_bundle(root)
    print(f"wrote {BUNDLE_DIR}: {len(written)} files from {root}")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def lab(
    ctx: typer.Context,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="the server's port (default: 8888, else a free one)")] = None,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="do not open a web browser")] = False,
    course_dir: Annotated[Path | None, typer.Option(help="the course folder (default: found upwards)")] = None,
) -> None:
    """Open the course in JupyterLab: formgrader, Assignment List and a local exchange, ready to use.

    Further arguments go to `jupyter lab`, e.g. `deepgrade lab -- --ServerApp.ip=0.0.0.0`."""
    from .lab import plan, start

    start(plan(course_dir, port=port, open_browser=not no_browser, extra=ctx.args))


def render(report, console: Console | None = None) -> None:
    """The check table a student reads."""
    from rich.table import Table

    console = console or Console()
    table = Table(title=f"deepgrade check {report.exercise} ({report.profile} profile)", title_justify="left")
    table.add_column("check")
    table.add_column("points", justify="right")
    table.add_column("result")
    said: dict[str, str] = {}  # a message shared by several failed checks (a stub's error) is said once
    for c in report.checks:
        mark = "[green]PASS[/green]" if c.passed else "[red]FAIL[/red]"
        if not c.passed and c.message in said:
            message = f"the same error as {said[c.message]} (above)"
        else:
            message = c.message
            if not c.passed:
                said.setdefault(c.message, c.name)
        first = c.first_difference()
        where = (f"\n[dim]layer {first.position}: expected {escape(first.expected or 'no layer')}; yours: "
                 f"{escape(first.received or 'missing')}[/dim]") if first is not None and not c.passed else ""
        table.add_row(c.name, f"{c.points:g} / {c.max_points:g}", f"{mark} {escape(message)}{where}")
    console.print(table)
    env = report.environment
    from .feedback.html import trained

    seeded = any(c.trains for c in report.checks) and trained(report)  # the seed means nothing otherwise
    console.print(
        f"score {report.score:g} / {report.max_score:g}"
        + (f"  (trained with seed {env['seed']}, {env.get('device', '?')}, {env.get('backend', '?')} backend, keras "
           f"{env.get('versions', {}).get('keras', '?')})" if seeded else "")
    )
    for line in report.notebook_notes():
        console.print(f"[dim]{escape(line)}[/dim]")
    if env.get("isolation", "bubblewrap") != "bubblewrap":
        from .sandbox.jail import why_not_isolated

        console.print(f"[yellow]graded without isolation: {escape(why_not_isolated(env['isolation']))}[/yellow]")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (testable without a subprocess)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported: its C++ logs are noise here
    try:
        code = app(args=argv if argv is not None else sys.argv[1:], standalone_mode=False)
        return code if isinstance(code, int) else 0
    except DeepgradeError as exc:
        err.print(f"[bold red]error:[/bold red] {escape(exc.message)}", highlight=False)
        if exc.tip:
            err.print(f"[yellow]tip:[/yellow] {escape(exc.tip)}", highlight=False)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.TyperException, typer.Abort) as exc:  # usage errors (typer's own click: no such option, ...)
        _usage(exc)
        return 2
    except Exception as exc:  # noqa: BLE001 - anything unexpected is the grader's failure, never "a check failed"
        return _crashed(exc)
    return 0


def _crashed(exc: BaseException) -> int:
    """An exception deepgrade did not expect: the grader failed (exit 3), never "a check failed" (exit 1)."""
    import traceback

    err.print(f"[bold red]error:[/bold red] the grader failed ({escape(type(exc).__name__)}: {escape(first_line(exc))}). "
              "This is a bug in deepgrade, not a problem with your work.", highlight=False)
    err.print("[yellow]tip:[/yellow] report it to your instructor with the traceback below.", highlight=False)
    err.print("".join(traceback.format_exception(exc)).rstrip(), highlight=False, markup=False)
    return GraderError.exit_code


def _usage(exc) -> None:
    show = getattr(exc, "format_message", None)
    err.print(f"[bold red]error:[/bold red] {escape(str(show() if show else exc))}", highlight=False)


def entry() -> None:
    sys.exit(main())
