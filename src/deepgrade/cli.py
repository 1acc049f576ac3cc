"""The ``deepgrade`` command: thin adapters over the library; errors become exit codes here only.

Exit codes: 0 success (every check passed), 1 a check failed or the student's
code failed, 2 a configuration or usage mistake, 3 the grader itself failed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from .errors import DeepgradeError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Auto-graded exercises and quizzes for a hands-on TensorFlow/Keras course.")
err = Console(stderr=True, soft_wrap=True)

CourseOpt = Annotated[Optional[Path], typer.Option("--course", help="course.yml or its folder (default: found upwards)")]


def _course(path: Optional[Path]):
    from .config import load_course

    return load_course(path)


@app.command()
def check(
    exercise: Annotated[str, typer.Argument(help="exercise id from course.yml, e.g. mlp")],
    notebook: Annotated[Path, typer.Argument(help="your notebook, e.g. exercises/mlp/mlp.ipynb")],
    as_json: Annotated[bool, typer.Option("--json", help="print the grade as JSON")] = False,
    profile: Annotated[Optional[str], typer.Option(help="smoke (CPU) or full (GPU); default: from the device")] = None,
    seed: Annotated[Optional[int], typer.Option(help="training seed, to reproduce a grade")] = None,
    course: CourseOpt = None,
) -> None:
    """Grade NOTEBOOK for EXERCISE: one row per check; exit 0 only when every check passes."""
    from .grading import grade
    from .report import render

    if profile not in (None, "smoke", "full"):
        raise typer.BadParameter(f"expected smoke or full. Received: {profile!r}.", param_hint="--profile")
    loaded = _course(course)
    if not notebook.is_file():
        raise typer.BadParameter(f"expected an existing .ipynb file. Received: {notebook}.", param_hint="NOTEBOOK")
    report = grade(loaded, exercise, notebook, profile=profile, seed=seed)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        render(report)
    raise typer.Exit(0 if report.passed else 1)


@app.command()
def data(
    source: Annotated[Path, typer.Option(help="folder holding the four Fashion-MNIST .gz files")] = Path(
        "/usr/share/datasets/fashion-mnist"),
) -> None:
    """Place Fashion-MNIST in the Keras cache (from Debian's dataset-fashion-mnist) and verify it."""
    from . import data as dataset

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
    seeds: Annotated[int, typer.Option(min=1, help="how many seeds (0..N-1) to train each model under")] = 10,
    profile: Annotated[Optional[str], typer.Option(help="smoke or full; default: from the device")] = None,
    write: Annotated[bool, typer.Option(help="write the result into docs/calibration.md")] = True,
    course: CourseOpt = None,
) -> None:
    """Train the reference solution and the naive baselines under N seeds; propose thresholds."""
    from . import calibrate as cal
    from .environment import default_profile

    loaded = _course(course)
    result = cal.calibrate(loaded, exercise, seeds, profile or default_profile(),
                           progress=lambda line: err.print(line, markup=False, highlight=False))
    print(cal.markdown(result))
    if write:
        cal.write_section(loaded.root / "docs" / "calibration.md", result)
        print(f"written to {loaded.root / 'docs' / 'calibration.md'}")


@app.command()
def pretrain(
    exercise: Annotated[str, typer.Argument(help="the transfer exercise whose base to build, e.g. transfer")] = "transfer",
    out: Annotated[Optional[Path], typer.Option(help="folder for the SavedModel (default: the handle in course.yml)")] = None,
    course: CourseOpt = None,
) -> None:
    """Train the course's feature extractor on the source task of course.yml; write it as a SavedModel."""
    from .transfer import pretrain as build

    loaded = _course(course)
    made = build(loaded, exercise, out)
    print(f"pretrained base written to {made['path']}: {made['parameters']:,} parameters, trained on "
          f"{made['images']:,} images of classes {made['source_classes']} for {made['epochs']} epochs "
          f"(seed {made['seed']}, {made['train_seconds']} s); source-task test accuracy "
          f"{made['source_test_accuracy']:.4f}; weights sha256 {made['weights_sha256'][:16]}...")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="folder for the demo course (wiped first)")] = Path("build/demo"),
    profile: Annotated[Optional[str], typer.Option(help="smoke or full; default: from the device")] = None,
    course: CourseOpt = None,
) -> None:
    """Release the MLP stub, autograde three sample students through nbgrader, print grades, write feedback."""
    from .demo import run_demo

    run_demo(_course(course), out, profile=profile)


@app.command()
def quiz(
    name: Annotated[Optional[str], typer.Argument(help="question bank in quizzes/, e.g. pooling")] = None,
    student: Annotated[Optional[str], typer.Option(help="your student id: it seeds your variant")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the variant with its answers (for instructors)")] = False,
    html: Annotated[Optional[Path], typer.Option(help="write a self-contained web page of the quiz to this file")] = None,
    nbgrader: Annotated[bool, typer.Option("--nbgrader", help="write the nbgrader source notebook solutions/quiz_NAME/")] = False,
    course: CourseOpt = None,
) -> None:
    """Take a self-check quiz in the terminal (or export it as JSON or a web page)."""
    from .config import find_course_root
    from .quiz import available, load_bank, make_quiz

    root = (course.parent if course and course.is_file() else course) or find_course_root()
    if name is None:
        print("quizzes: " + ", ".join(available(root)))
        return
    if nbgrader:
        from .quiz_nb import NBGRADER_VARIANT, write_source

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
        from .quiz_html import write_html

        write_html(variant, html)
        print(f"wrote {html} ({len(variant.variants)} questions for {variant.student})")
    else:
        from .quiz_terminal import run

        run(variant)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (testable without a subprocess)."""
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
    except (typer.BadParameter, typer.Abort) as exc:  # click usage errors
        _usage(exc)
        return 2
    except Exception as exc:  # noqa: BLE001 - click.ClickException subclasses
        import click

        if isinstance(exc, click.ClickException):
            _usage(exc)
            return 2
        raise
    return 0


def _usage(exc) -> None:
    show = getattr(exc, "format_message", None)
    err.print(f"[bold red]error:[/bold red] {escape(str(show() if show else exc))}", highlight=False)


def entry() -> None:
    sys.exit(main())
