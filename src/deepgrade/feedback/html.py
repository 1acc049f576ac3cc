"""A grade as HTML: one section per check (named, with its points, PASS and FAIL told apart by more than
colour), messages that wrap, the architecture as a layer table with the first difference marked, and the
plots of the grader's training run embedded as PNG. Every string from the report is escaped."""

from __future__ import annotations

import base64
from html import escape

from ..protocol import CheckResult, Report
from .plots import figures

STYLE = """
<style>
.dg-feedback { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; font-size: 14px; max-width: 60em; }
.dg-check { border: 1px solid #d0d7de; border-left-width: 6px; border-radius: 4px; margin: 0.6em 0; padding: 0.5em 0.8em; }
.dg-check.dg-pass { border-left-color: #1a7f37; background: #f0fff4; }
.dg-check.dg-fail { border-left-color: #cf222e; background: #fff5f5; }
.dg-head { display: flex; gap: 0.6em; align-items: baseline; flex-wrap: wrap; }
.dg-badge { font-weight: 700; padding: 0 0.5em; border-radius: 3px; color: white; letter-spacing: 0.05em; }
.dg-pass .dg-badge { background: #1a7f37; }
.dg-fail .dg-badge { background: #cf222e; }
.dg-name { font-weight: 600; font-family: ui-monospace, monospace; }
.dg-points { color: #57606a; }
.dg-message { white-space: pre-wrap; overflow-wrap: anywhere; word-break: break-word; margin: 0.4em 0; }
.dg-seed { color: #57606a; font-size: 12px; }
.dg-feedback table.dg-layers { border-collapse: collapse; margin: 0.4em 0; font-size: 13px; table-layout: auto; width: auto; }
.dg-feedback table.dg-layers th, .dg-feedback table.dg-layers td { border: 1px solid #d0d7de; padding: 2px 8px;
  text-align: left !important; vertical-align: top; white-space: normal; overflow-wrap: anywhere; }
.dg-feedback table.dg-layers td.dg-num { text-align: right !important; font-variant-numeric: tabular-nums; }
.dg-feedback table.dg-layers tr.dg-differs td { background: #ffebe9; font-weight: 600; }
.dg-plots { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
.dg-plots figure { margin: 0.4em 0; }
.dg-plots img { max-width: 100%; height: auto; }
.dg-plots figcaption { font-size: 12px; color: #57606a; }
.dg-summary { font-size: 15px; margin: 0.4em 0; }
.dg-env { color: #57606a; font-size: 12px; }
</style>
"""


def _points(value: float) -> str:
    return f"{value:g}"


def trained(report: Report) -> bool:
    """Whether the grader trained a model for this report (then, and only then, its seed means something)."""
    env = report.environment
    return "seed" in env and bool(env.get("trained"))  # set by the grader's train fixture, every training's


def seed_note(report: Report, result: CheckResult) -> str:
    """``trained with seed 7 (cpu, tensorflow backend, smoke profile)`` for a check that trained; '' for the
    others. The seed is the grade's: ``--seed`` reproduces it, a second training's included (``environment.retry``)."""
    env = report.environment
    if not result.trains or not trained(report):  # no training ran (a stub, a structural check): no seed to show
        return ""
    return (f"trained with seed {env['seed']} ({env.get('device', '?')}, {env.get('backend', '?')} backend, "
            f"{report.profile} profile)")


def layers_table(result: CheckResult) -> str:
    if not result.layers:
        return ""
    params = any(r.expected_params is not None or r.received_params is not None for r in result.layers)
    head = "<tr><th>#</th><th>expected</th><th>your model</th>" + (
        "<th>expected params</th><th>your params</th>" if params else "") + "</tr>"
    rows = []
    for row in result.layers:
        mark = " dg-differs" if row.differs else ""
        received = escape(row.received) if row.received is not None else "<em>missing</em>"
        if row.differs:
            received += " &larr; first difference"
        cells = [f"<td class='dg-num'>{row.position}</td>",
                 f"<td>{escape(row.expected) if row.expected is not None else '<em>no layer</em>'}</td>",
                 f"<td>{received}</td>"]
        if params:
            cells += [f"<td class='dg-num'>{'' if row.expected_params is None else f'{row.expected_params:,}'}</td>",
                      f"<td class='dg-num'>{'' if row.received_params is None else f'{row.received_params:,}'}</td>"]
        rows.append(f"<tr class='dg-row{mark}'>{''.join(cells)}</tr>")
    table = f"<table class='dg-layers'><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"
    if result.passed:  # nothing to point at: folded away
        return f"<details><summary>the layers, side by side</summary>{table}</details>"
    return table


def plots_html(report: Report) -> str:
    if report.training is None:
        return ""
    shown = []
    for title, png in figures(report.training):
        data = base64.b64encode(png).decode()
        shown.append(f"<figure><img src='data:image/png;base64,{data}' alt='{escape(title, quote=True)}'>"
                     f"<figcaption>{escape(title)}</figcaption></figure>")
    return f"<div class='dg-plots'>{''.join(shown)}</div>"


def check_html(report: Report, result: CheckResult, *, plots: bool = False, style: bool = True) -> str:
    """One check's section; ``plots``: with the training run's plots under it."""
    passed = "pass" if result.passed else "fail"
    note = seed_note(report, result)
    return (
        (STYLE if style else "")
        + f"<section class='dg-feedback dg-check dg-{passed}' id='check-{escape(result.name, quote=True)}'>"
        + f"<div class='dg-head'><span class='dg-badge'>{passed.upper()}</span>"
        + f"<span class='dg-name'>{escape(result.name)}</span>"
        + f"<span class='dg-points'>{_points(result.points)} / {_points(result.max_points)} points</span></div>"
        + f"<p class='dg-message'>{escape(result.message)}</p>"
        + layers_table(result)
        + (f"<div class='dg-seed'>{escape(note)}</div>" if note else "")
        + (plots_html(report) if plots else "")
        + "</section>"
    )


def check_text(report: Report, result: CheckResult) -> str:
    """The plain-text twin: ``PASS architecture (2 / 2): message [trained with seed 7 ...]``."""
    note = seed_note(report, result)
    text = (f"{'PASS' if result.passed else 'FAIL'} {result.name} ({_points(result.points)} / "
            f"{_points(result.max_points)}): {result.message}")
    first = result.first_difference()
    if first is not None and not result.passed:
        text += f"\n  layer {first.position}: expected {first.expected or 'no layer'}; yours: {first.received or 'missing'}"
    return text + (f"\n  ({note})" if note else "")


def first_training_check(report: Report) -> str | None:
    """The check under which the training run's plots are shown (the first that trained)."""
    return next((c.name for c in report.checks if c.trains), None)


def report_html(report: Report) -> str:
    """Every check, in course order, then the plots and the environment: an HTML fragment."""
    env = report.environment
    sections = "".join(check_html(report, c, style=False) for c in report.checks)
    about = ", ".join(f"{k} {env[k]}" for k in ("seed", "device", "isolation") if k in env)
    versions = env.get("versions", {})
    if versions:
        about += ", " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))
    plots = plots_html(report)
    return (
        STYLE + "<div class='dg-feedback'>"
        + f"<p class='dg-summary'><b>{escape(report.exercise)}</b>: {_points(report.score)} / "
          f"{_points(report.max_score)} points ({escape(report.profile)} profile)</p>"
        + sections
        + (f"<h3>The grader's training run</h3>{plots}" if plots else "")
        + "".join(f"<p class='dg-env'>{escape(line)}</p>" for line in report.notebook_notes())
        + (f"<p class='dg-env'>Graded with {escape(about)}.</p>" if about else "")
        + "</div>"
    )


def page(report: Report, title: str | None = None) -> str:
    """A standalone HTML page (``deepgrade check --html FILE``)."""
    title = title or f"deepgrade check {report.exercise}"
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title></head>"
            f"<body><h1 style='font-family: system-ui, sans-serif'>{escape(title)}</h1>{report_html(report)}</body></html>\n")
