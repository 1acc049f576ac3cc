"""The rule that turns calibration trainings into thresholds and error rates: a proposed threshold with room for
unlucky seeds (:func:`propose`, :func:`propose_by_rule`), and how often the retry rule errs at given thresholds
(the reference's false-fail rate, each baseline's false-pass rate, each answer's wrong-verdict rate
(:class:`Verdict`), with 95% upper bounds)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from ..grader.run import METRIC_OF

# metric in the grade's environment -> the check whose threshold it decides
METRIC_CHECK = {metric: check for check, metric in METRIC_OF.items()}  # the retry rule's, inverted
LOWER_IS_BETTER = {"gap"}  # a maximum, not a minimum
REFERENCE = "reference solution"  # calibration's name of the reference
BASELINE = "baseline: "  # of a baseline of course.yml's ``baselines:`` ("baseline: overfit")
ANSWER = "answer: "  # of an answer of course.yml's ``answers:`` ("answer: dropout")


def models_of(exercise) -> dict[str, tuple[str | None, tuple[str, ...]]]:
    """The models calibration trains for ``exercise`` (a course.yml exercise), in order: name -> (its answer file,
    relative to course.yml, None for the reference; the checks it must fail)."""
    return ({REFERENCE: (None, ())}
            | {BASELINE + name: (spec.answer, tuple(spec.fails)) for name, spec in exercise.baselines.items()}
            | {ANSWER + name: (spec.answer, tuple(spec.fails)) for name, spec in exercise.answers.items()})


@dataclass(frozen=True)
class Runs:
    name: str
    values: dict[str, list[float]]  # metric -> one value per seed
    fails: tuple[str, ...] = ()
    retried: bool = True  # passes every check that does not train: a failed training is trained again
    structural: tuple[str, ...] = ()  # checks it fails on what it is, whatever a training gives (no threshold needed)
    seeds: tuple[int, ...] = ()  # the seed of each value, where known

    @property
    def n(self) -> int:
        """How many seeds (trainings) it has."""
        return len(next(iter(self.values.values())))

    @property
    def answer(self) -> bool:
        """An answer students give (course.yml ``answers:``), not the reference or a baseline."""
        return self.name.startswith(ANSWER)

    def stats(self, metric: str) -> tuple[float, float, float, float]:
        """min, mean, max and standard deviation over the seeds."""
        v = self.values[metric]
        return min(v), statistics.fmean(v), max(v), _spread(v)


MARGIN = 0.015  # at least this far below the reference's worst seed
SPREAD = 4.0    # and at least this many standard deviations below the reference's mean


def _round_down(x: float) -> float:
    return math.floor(x * 1000 + 1e-9) / 1000


def _spread(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _must_fail(baselines: list[Runs], metric: str) -> list[Runs]:
    """The baselines a threshold for ``metric`` must fail: those meant to fail its check that do not already
    fail it on what they are (a structural failure needs no threshold)."""
    check = METRIC_CHECK[metric]
    return [b for b in baselines if check in b.fails and check not in b.structural and metric in b.values]


def _no_baseline(baselines: list[Runs], metric: str) -> str:
    """What to say when no baseline constrains a threshold for ``metric``."""
    check = METRIC_CHECK[metric]
    gated = [b.name.removeprefix(BASELINE) for b in baselines if check in b.fails and check in b.structural]
    return (f"no baseline to fail by a threshold ({', '.join(gated)} fail{'s' if len(gated) == 1 else ''} "
            f"`{check}` on what {'it is' if len(gated) == 1 else 'they are'})" if gated else "no baseline to fail")


def propose(reference: Runs, baselines: list[Runs], metric: str = "test_accuracy") -> tuple[float | None, str]:
    """A threshold for ``metric`` that the reference passes on any seed and the baselines meant to fail do not.

    Grades draw a fresh seed, so the calibration seeds are a sample: for a minimum (accuracy, gain,
    fine_tuning) the threshold is the lower of MARGIN below the reference's worst seed and SPREAD standard
    deviations below its mean, rounded down to 0.001 (a correct solution must not fail by chance). A baseline
    that must fail has to stay below it on its best seed, or the two cannot be separated under this budget
    (its spread is not used: a collapsing baseline is bimodal, at chance on some seeds). For a maximum (gap)
    the same, mirrored and rounded up.
    """
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    worse, better = ("above", "below") if sign < 0 else ("below", "above")
    ref = [sign * v for v in reference.values[metric]]
    worst, mean, sd = min(ref), statistics.fmean(ref), _spread(ref)
    threshold = _round_down(min(worst - MARGIN, mean - SPREAD * sd))
    spread = (f"{(mean - threshold) / sd:.1f} standard deviations {worse} its mean" if sd else
              "no spread measured (one seed, or all equal): calibrate with more seeds")
    why = f"{worst - threshold:.4f} {worse} the reference's worst seed, {spread}"
    must_fail = _must_fail(baselines, metric)
    if must_fail:
        reach = max(max(sign * v for v in b.values[metric]) for b in must_fail)
        if threshold <= reach:
            return None, (f"cannot separate: the reference needs a threshold at or {worse} {sign * threshold:.3f} to "
                          f"pass on any seed, and a baseline that must fail reaches {sign * reach:.4f}; raise the "
                          "profile's budget")
        why += f", {threshold - reach:.4f} {better} the best baseline"
    else:
        why += "; " + _no_baseline(baselines, metric)
    if metric == "gain" and threshold <= 0:
        return None, f"the reference's gain would need a threshold of {threshold:+.3f}: the pretrained base does not clearly help"
    return sign * threshold + 0.0, why


def propose_by_rule(reference: Runs, baselines: list[Runs], metric: str = "test_accuracy",
                    checks: int = 1) -> tuple[float | None, str]:
    """The threshold the retry rule needs: the reference, and every answer among ``baselines`` that must earn full
    marks (and can: it passes the checks that do not train), loses a grade to this check at most TARGET /
    ``checks`` of the time (95% upper bound, ``checks`` training checks sharing the target), and every baseline or
    answer that must fail it does on every seed. Of the thresholds that do both, the middle one (rounded to
    0.001), so both errors keep room, but no more than MARGIN below the tightest allowed tail (a baseline far below
    must not drag the threshold down to it); with no baseline to fail, the lower of that bound and
    :func:`propose`'s. Too few seeds to show it (fewer than about 100): :func:`propose`'s margin rule instead."""
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    ref = sorted(sign * v for v in reference.values[metric])
    n = len(ref)
    allowed = max((k for k in range(n) if upper_bound(k, n) ** 2 <= TARGET / checks), default=None)
    if allowed is None:
        threshold, why = propose(reference, baselines, metric)
        return threshold, f"{n} seeds are too few to show the retry rule's bound, so the margin rule: {why}"
    high = _round_down(ref[allowed])  # at most `allowed` seeds of the reference below it
    tightest = "the reference"
    for run in (r for r in baselines if r.answer and not r.fails and r.retried and metric in r.values):
        mine = sorted(sign * v for v in run.values[metric])  # an answer that must pass, and can
        room = max((k for k in range(len(mine)) if upper_bound(k, len(mine)) ** 2 <= TARGET / checks), default=None)
        if room is not None and _round_down(mine[room]) < high:  # too few seeds: its own table row says so
            high, tightest = _round_down(mine[room]), run.name
    must_fail = _must_fail(baselines, metric)
    reach = max((sign * v for b in must_fail for v in b.values[metric]), default=None)
    low = math.ceil((reach + 0.0005) * 1000 - 1e-9) / 1000 if reach is not None else None
    worse = "above" if sign < 0 else "below"
    failing = "baselines and answers" if any(b.answer for b in must_fail) else "baselines"
    if low is not None and low > high:
        return None, (f"cannot separate: {tightest} needs a threshold at or {worse} {sign * high:.3f} and "
                      f"{failing} that must fail reach {sign * reach:.4f}; raise the profile's budget")
    if low is not None:  # the middle of the room, but no further than MARGIN from the reference's allowed tail
        threshold = max(_round_down((low + high) / 2), _round_down(high - MARGIN))
    else:  # nothing to separate from: no closer to the reference's tail than the margin rule either
        margin = propose(reference, [], metric)[0]
        threshold = min(high, sign * margin) if margin is not None else high
    if metric == "gain" and threshold <= 0:
        return None, f"the reference's gain would need a threshold of {threshold:+.3f}: the pretrained base does not clearly help"
    kept = sum(v < threshold for v in ref)
    said = (f"{kept} of {n} reference seeds {worse} it (at most {allowed} allowed: "
            f"{upper_bound(allowed, n) ** 2:.1e} with the retry, 95% bound)")
    if tightest != "the reference":
        said += f"; {tightest} needs it at or {worse} {sign * high:.3f}"
    said += (f"; {failing} that must fail reach {sign * reach:.4f}; room {sign * low:.3f}..{sign * high:.3f}"
             if reach is not None else "; " + _no_baseline(baselines, metric))
    return sign * threshold + 0.0, said


# -- how often the rule errs -------------------------------------------------------------------------
TARGET = 1e-3  # a correct submission may lose points to a seed at most this often


def upper_bound(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound of a rate seen ``k`` times in ``n`` trials (0 of 200: 0.0149)."""
    if n == 0:
        return 1.0
    if k >= n:
        return 1.0

    def cdf(p: float) -> float:  # P(X <= k) for X ~ Binomial(n, p)
        return sum(math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                            + (i * math.log(p) if i else 0.0) + ((n - i) * math.log1p(-p))) for i in range(k + 1))

    lo, hi = k / n, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) > 1 - confidence else (lo, mid)
    return hi


@dataclass(frozen=True)
class Rate:
    """How often a model's grade lands on the wrong side of a check, under the retry rule (grader.run)."""

    k: int            # seeds whose one training was on the wrong side
    n: int
    retried: bool     # whether the model gets a second training (it passes every check that does not train)
    estimate: float   # with the retry
    upper: float      # 95% upper bound of ``estimate``
    structural: bool = False  # the check fails on what the model is, on every seed: no training can pass it

    def said(self) -> str:
        if self.structural:
            return f"fails on what the model is, {self.n}/{self.n} seeds, whatever the training gives"
        return f"{self.k}/{self.n} one training; {self.estimate:.1e} with the retry (95% bound {self.upper:.1e})"


def _fails(metric: str, value: float, threshold: float) -> bool:
    return value > threshold if metric in LOWER_IS_BETTER else value < threshold


def false_fail(run: Runs, thresholds: dict[str, float]) -> Rate:
    """The reference loses a training check's points: its first training fails one and so does the second
    (the reference passes every check that does not train, so it always gets one). Seeds are independent draws."""
    metrics = [(m, thresholds[c]) for m, c in METRIC_CHECK.items() if m in run.values and thresholds.get(c) is not None]
    n = run.n
    k = sum(any(_fails(m, run.values[m][i], t) for m, t in metrics) for i in range(n))
    return Rate(k, n, True, (k / n) ** 2, upper_bound(k, n) ** 2)


def false_pass(run: Runs, metric: str, threshold: float) -> Rate:
    """A baseline passes a check it must fail: on its first training or, when it passes the checks that do not
    train (it gets a second training), on the second; never, when it fails the check on what it is."""
    values = run.values[metric]
    n = len(values)
    if METRIC_CHECK[metric] in run.structural:
        return Rate(0, n, run.retried, 0.0, 0.0, structural=True)
    k = sum(not _fails(metric, v, threshold) for v in values)
    q, q_upper = k / n, upper_bound(k, n)
    if run.retried:
        return Rate(k, n, True, 1 - (1 - q) ** 2, 1 - (1 - q_upper) ** 2)
    return Rate(k, n, False, q, q_upper)


@dataclass(frozen=True)
class Verdict:
    """How often an answer students give gets full marks under the retry rule, against the verdict course.yml
    names for it (full marks, or the checks it must fail)."""

    name: str
    fails: tuple[str, ...]  # the checks it must fail; () when it must earn full marks
    full: Rate              # k: its trainings that fail a training check; estimate: P(not full marks) with the rule
    passes: dict[str, Rate]  # per check it must fail: the false-pass rate (as a baseline's)

    @property
    def wrong(self) -> Rate:
        """The rate of the wrong verdict: not full marks for an answer that must earn them, else the highest
        false-pass rate of the checks it must fail."""
        if not self.fails:
            return self.full
        return max(self.passes.values(), key=lambda r: r.upper, default=Rate(0, 0, False, 0.0, 1.0))

    @property
    def holds(self) -> bool:
        """The verdict is decided by the model: its wrong side at most TARGET (95% upper bound)."""
        return self.wrong.upper <= TARGET


def not_full_marks(run: Runs, thresholds: dict[str, float]) -> Rate:
    """How often ``run`` misses full marks: as the reference's false fail (a training check failed by its first
    training and by its second); always, when it fails a check that does not train (it gets no second)."""
    if not run.retried:
        return Rate(run.n, run.n, False, 1.0, 1.0, structural=True)
    return false_fail(run, thresholds)


def rates(runs: list[Runs], thresholds: dict[str, float | None]) -> dict:
    """The reference's false-fail rate over all its training checks, each baseline's false-pass rate for each
    check it must fail, and each answer's verdict (:class:`Verdict`), at ``thresholds``."""
    reference, others = runs[0], runs[1:]
    out = {"reference": false_fail(reference, thresholds), "baselines": {}, "answers": {}}
    for run in others:
        passes = {check: false_pass(run, metric, thresholds[check]) for metric, check in METRIC_CHECK.items()
                  if check in run.fails and metric in run.values and thresholds.get(check) is not None}
        if run.answer:
            n = run.n
            for check in sorted(set(run.fails) - set(passes)):
                if check in run.structural:  # failed on what it is, every seed
                    passes[check] = Rate(0, n, False, 0.0, 0.0, structural=True)
                elif check not in METRIC_CHECK.values():  # a check that does not train, passed on every seed
                    passes[check] = Rate(n, n, False, 1.0, 1.0)
                else:  # a check that trains, not measured here (no threshold in this profile, or no metric)
                    passes[check] = Rate(0, 0, run.retried, 1.0, 1.0)
            out["answers"][run.name] = Verdict(run.name, run.fails, not_full_marks(run, thresholds), passes)
        else:
            out["baselines"].update({(run.name, check): rate for check, rate in passes.items()})
    return out
