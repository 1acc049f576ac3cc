"""A calibration result as docs/calibration.md's section: its markdown, and the section rewritten in place."""

from __future__ import annotations

import math
import re
from datetime import date
from pathlib import Path

from .rule import ANSWER, METRIC_CHECK, TARGET, Rate, Verdict


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(math.floor(q * (len(ordered) - 1)))))]


def _seeds(seeds: list[int]) -> str:
    """0-199 (200 seeds); a few seeds themselves; runs of consecutive seeds as ranges (0-199, 300-309: 210 seeds)."""
    seeds = sorted(seeds)
    if len(seeds) > 3 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]} ({len(seeds)} seeds)"
    spans: list[list[int]] = []
    for seed in seeds:
        if spans and seed == spans[-1][-1] + 1:
            spans[-1].append(seed)
        else:
            spans.append([seed])
    if all(len(span) < 4 for span in spans):
        return ", ".join(map(str, seeds))
    shown = ", ".join(f"{span[0]}-{span[-1]}" if len(span) > 2 else ", ".join(map(str, span)) for span in spans)
    return f"{shown}: {len(seeds)} seeds"


def markdown(result: dict) -> str:
    env = result["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items())
    seeds = result["seeds"]
    shown = _seeds(seeds) + "".join(f" ({run.name}: seeds {_seeds(run.seeds)})" for run in result["runs"]
                                    if run.seeds and list(run.seeds) != list(seeds))
    device = env.get("device", "?") + (f", {env['device_name']}" if env.get("device_name") else "")
    lines = [
        f"## {result['exercise']}, {result['profile']} profile{_backend_key(result).replace(':', ', ')} "
        "(`deepgrade calibrate`)", "",
        f"Measured {env.get('date') or date.today().isoformat()} on {device} ({env.get('platform', '?')}, "
        f"{env.get('cpu_count', '?')} cores), backend {env.get('backend', '?')}, {versions}; "
        f"seeds {shown}; {env.get('train_size', '?'):,} training images, "
        f"{env.get('epochs', '?')} epochs." if isinstance(env.get("train_size"), int) else
        f"Measured on {device}; seeds {shown}.", "",
        *([f"Runs on more than one machine: {'; '.join(env['machines'])}.", ""] if env.get("machines") else []),
        "| model | metric | min | 1% | mean | max | sd |", "|---|---|---|---|---|---|---|",
    ]
    for run in result["runs"]:
        for metric in run.values:
            lo, mean, hi, sd = run.stats(metric)
            q = _quantile(run.values[metric], 0.01)
            lines.append(f"| {run.name} | {metric} | {lo:.4f} | {q:.4f} | {mean:.4f} | {hi:.4f} | {sd:.4f} |")
    found = result.get("rates")
    if found:
        current = result["current"]
        checks = ", ".join(f"{c} {current[c]}" for m, c in METRIC_CHECK.items()
                           if current.get(c) is not None and m in result["runs"][0].values)
        lines += ["", f"At course.yml's thresholds ({checks}), under the retry rule (a model that passes the checks "
                  "that do not train has a failed check that trains graded again on a second training, under a second "
                  "seed; the better counts):", "",
                  "| model | error | wrong side, one training | second training | rate with the rule | 95% upper bound |",
                  "|---|---|---|---|---|---|"]
        ref: Rate = found["reference"]
        lines.append(f"| reference solution | false fail (any training check) | {ref.k}/{ref.n} | yes | "
                     f"{ref.estimate:.2e} | {ref.upper:.2e} |")
        for (name, check), rate in found["baselines"].items():
            if rate.structural:
                lines.append(f"| {name} | false pass of `{check}` | {rate.k}/{rate.n}: fails on what it is, whatever "
                             "the training gives | no | 0 | 0 (no seed can pass it) |")
                continue
            lines.append(f"| {name} | false pass of `{check}` | {rate.k}/{rate.n} | {'yes' if rate.retried else 'no'} | "
                         f"{rate.estimate:.2e} | {rate.upper:.2e} |")
        if found.get("answers"):
            lines += ["", "The answers students give (course.yml `answers:`), each against the verdict it must get; the "
                      f"verdict is decided by the model when its wrong side is at most {TARGET:.0e} (95% bound):", "",
                      "| answer | verdict it must get | one training on the wrong side | wrong verdict with the rule | "
                      "95% upper bound | full marks with the rule (95% bound) | decided by the model |",
                      "|---|---|---|---|---|---|---|"]
            for verdict in found["answers"].values():
                lines.append(_verdict_row(verdict))
    lines.append("")
    for check, (threshold, why) in result["thresholds"].items():
        current = result["current"].get(check)
        shown_t = f"**{threshold:.3f}**" if threshold is not None else "**none**"
        lines.append(f"Proposed `{check}` threshold: {shown_t} ({why}); course.yml has {current}.")
    return "\n".join(lines) + "\n"


def _verdict_row(verdict: Verdict) -> str:
    wrong, full = verdict.wrong, verdict.full
    must = "full marks" if not verdict.fails else "fails " + ", ".join(f"`{c}`" for c in verdict.fails)
    if wrong.n == 0:
        seen = "not measured (no threshold or metric for a check it must fail)"
    elif wrong.structural:
        seen = f"{wrong.k}/{wrong.n}: on what it is, whatever the training gives"
    else:
        seen = f"{wrong.k}/{wrong.n}"
    if full.structural:
        shown = "0 (on what it is)"
    elif not verdict.fails:  # q squared over-counts a miss when the retry grades only the failed checks: safe
        shown = f"{1 - full.estimate:.5f}, at least {1 - full.upper:.5f}"
    else:  # full marks need each check it must fail passed: at most the least likely of those false passes
        shown = f"at most {min(rate.upper for rate in verdict.passes.values()):.5f}"
    return (f"| {verdict.name.removeprefix(ANSWER)} | {must} | {seen} | {wrong.estimate:.2e} | {wrong.upper:.2e} | "
            f"{shown} | {'yes' if verdict.holds else '**no**'} |")


def _backend_key(result: dict) -> str:
    """'' for TensorFlow on a CPU (the sections written before backends were told apart), else ':jax-gpu' etc."""
    env = result["environment"]
    backend, device = env.get("backend", "tensorflow"), env.get("device", "cpu")
    return "" if (backend, device) == ("tensorflow", "cpu") else f":{backend}-{device}"


def write_section(path: Path, result: dict) -> None:
    """Replace (or append) this exercise and profile's section of docs/calibration.md."""
    key = f"{result['exercise']}:{result['profile']}{_backend_key(result)}"
    begin, end = f"<!-- calibrate {key} -->", f"<!-- /calibrate {key} -->"
    block = f"{begin}\n{markdown(result)}{end}\n"
    text = path.read_text() if path.exists() else "# Calibration\n\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end) + r"\n?", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
