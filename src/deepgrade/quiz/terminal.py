"""The quiz in a terminal: one question at a time, immediate feedback, the score at the end."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

from .bank import Quiz
from .questions import FREE, AnswerFormatError, grade, parse

HINT_WORDS = {"h", "hint", "?"}


def run(quiz: Quiz, ask: Callable[[str], str] = input, console: Console | None = None) -> float:
    """Ask every question; a malformed answer (or a wrong count of numbers) is explained and asked again: it
    costs no attempt."""
    console = console or Console()
    console.print(f"[bold]{escape(quiz.title)}[/bold] quiz for {escape(quiz.student)}: "
                  f"{len(quiz.variants)} questions. Type h for a hint.")
    score = 0.0
    for number, variant in enumerate(quiz.variants, start=1):
        body = escape(variant.prompt)
        if variant.choices:
            body += "\n" + "\n".join(f"  {i}. {escape(c)}" for i, c in enumerate(variant.choices, start=1))
        console.print(Panel(body, title=f"Question {number} of {len(quiz.variants)}", title_align="left"))
        while True:
            try:
                text = ask("your answer: ")
            except EOFError:
                console.print(f"\nInput ended before question {number}. Score so far: {score:g} / {quiz.max_score:g}")
                return score
            if text.strip().lower() in HINT_WORDS:
                console.print(f"[yellow]hint:[/yellow] {escape(variant.hint)}")
                continue
            try:
                value = parse(variant, text)
            except AnswerFormatError as exc:
                console.print(f"[yellow]{escape(str(exc))} {FREE}[/yellow]")
                continue
            break
        result = grade(variant, value)
        score += result.score
        mark = "[green]Correct.[/green]" if result.correct else f"[red]{escape(result.feedback)}[/red]"
        console.print(mark)
        console.print(f"[dim]Why:[/dim] {escape(variant.explanation)}\n")
    console.print(f"[bold]Score: {score:g} / {quiz.max_score:g}[/bold]")
    return score
