"""The retry rule: a training check that misses narrowly trains once more under a second seed; the better counts.
And how calibration estimates what the rule costs: the reference's false-fail and the baselines' false-pass rates.
"""

import tempfile
from pathlib import Path

import pytest
import yaml

from deepgrade.calibrate import Runs, false_fail, false_pass, markdown, rates, upper_bound
from deepgrade.course import load_course
from deepgrade.grader import grade
from deepgrade.grader.run import build_submission, second_seed


def test_upper_bound_is_clopper_pearson():
    assert upper_bound(0, 200) == pytest.approx(1 - 0.05 ** (1 / 200), abs=1e-6)  # 0.0149: the "rule of three"
    assert upper_bound(1, 200) == pytest.approx(0.0236, abs=2e-4) and upper_bound(200, 200) == 1.0
    assert upper_bound(5, 100) == pytest.approx(0.1023, abs=5e-4)


def test_the_reference_fails_only_when_both_trainings_fail():
    ref = Runs("reference solution", {"test_accuracy": [0.82] * 196 + [0.795, 0.799, 0.79, 0.70]})
    rate = false_fail(ref, {"accuracy": 0.80})
    assert (rate.k, rate.n, rate.retried) == (4, 200, True)
    assert rate.estimate == pytest.approx((4 / 200) ** 2) and rate.upper == pytest.approx(upper_bound(4, 200) ** 2)
    assert "4/200 one training" in rate.said()
    clean = false_fail(Runs("r", {"test_accuracy": [0.82] * 200}), {"accuracy": 0.80})
    assert clean.estimate == 0 and clean.upper == pytest.approx(0.0149 ** 2, rel=0.01) and clean.upper < 1e-3
    both = Runs("r", {"test_accuracy": [0.82, 0.82, 0.79], "gap": [0.05, 0.13, 0.05]})
    assert false_fail(both, {"accuracy": 0.80, "gap": 0.118}).k == 2  # any training check lost counts


def test_a_baseline_passes_on_its_first_training_or_on_its_second_chance():
    overfit = Runs("baseline: overfit", {"gap": [0.13, 0.125, 0.17, 0.11]}, fails=("gap",))  # its layers pass
    rate = false_pass(overfit, "gap", 0.118)
    assert (rate.k, rate.retried) == (1, True) and rate.estimate == pytest.approx(1 - (3 / 4) ** 2)
    logistic = Runs("baseline: logistic", {"test_accuracy": [0.81, 0.77]}, fails=("accuracy",), retried=False)
    once = false_pass(logistic, "test_accuracy", 0.80)  # wrong layers: never trained twice
    assert (once.k, once.retried, once.estimate) == (1, False, 0.5) and once.upper == pytest.approx(upper_bound(1, 2))
    found = rates([Runs("reference solution", {"gap": [0.08] * 4}), overfit], {"gap": 0.118})
    assert ("baseline: overfit", "gap") in found["baselines"] and found["reference"].k == 0


def test_a_baseline_that_fails_on_what_it_is_needs_no_threshold():
    """regularization's overfit baseline fails `gap` without regard to its training (it adds no regularization):
    its false-pass rate is 0 by construction, and the threshold no longer has to separate its gaps."""
    from deepgrade.calibrate import propose_by_rule

    ref = Runs("reference solution", {"gap": [0.08] * 190 + [0.112] * 10})
    gaps = [0.110] + [0.155] * 199  # its best seed reaches into the reference's tail
    assert propose_by_rule(ref, [Runs("baseline: overfit", {"gap": gaps}, fails=("gap",))], "gap")[0] is None
    overfit = Runs("baseline: overfit", {"gap": gaps}, fails=("gap",), retried=False, structural=("gap",))
    threshold, why = propose_by_rule(ref, [overfit], "gap")
    assert threshold is not None and threshold >= 0.112
    assert why.endswith("no baseline to fail by a threshold (overfit fails `gap` on what it is)")
    rate = false_pass(overfit, "gap", 0.112)  # even where its gap is on the passing side
    assert (rate.k, rate.estimate, rate.upper, rate.structural) == (0, 0.0, 0.0, True)
    assert rate.said() == "fails on what the model is, 200/200 seeds, whatever the training gives"
    runs = [ref, overfit]
    result = {"exercise": "regularization", "profile": "smoke", "seeds": list(range(200)), "runs": runs,
              "current": {"gap": 0.118}, "thresholds": {"gap": (threshold, why)}, "rates": rates(runs, {"gap": 0.118}),
              "environment": {"train_size": 2000, "epochs": 40, "device": "cpu"}}
    assert ("| baseline: overfit | false pass of `gap` | 0/200: fails on what it is, whatever the training gives | no "
            "| 0 | 0 (no seed can pass it) |") in markdown(result)


def test_markdown_reports_the_rates_at_the_current_thresholds():
    runs = [Runs("reference solution", {"test_accuracy": [0.82, 0.81, 0.83]}),
            Runs("baseline: logistic", {"test_accuracy": [0.77, 0.78, 0.775]}, fails=("accuracy",), retried=False)]
    result = {"exercise": "mlp", "profile": "smoke", "seeds": [0, 1, 2], "runs": runs, "current": {"accuracy": 0.8},
              "thresholds": {"accuracy": (0.795, "test")}, "rates": rates(runs, {"accuracy": 0.8}),
              "environment": {"train_size": 10000, "epochs": 3, "device": "cpu", "backend": "jax"}}
    text = markdown(result)
    assert "## mlp, smoke profile, jax-cpu (`deepgrade calibrate`)" in text and "| 1% |" in text
    assert "| reference solution | false fail (any training check) | 0/3 | yes | 0.00e+00 |" in text
    assert "| baseline: logistic | false pass of `accuracy` | 0/3 | no | 0.00e+00 |" in text


def test_second_seed_is_a_fixed_function_of_the_first():
    assert second_seed(1) == second_seed(1) != 1 and 0 <= second_seed(2**31 - 1) < 2**31


@pytest.mark.slow
def test_a_narrow_miss_trains_again_and_the_better_training_counts(edited_course):
    """A tiny budget (2,000 images, 1 epoch) and a threshold set between the two trainings' accuracies."""
    def tiny(data):
        data["exercises"]["mlp"]["profiles"]["smoke"].update(train_size=2000, epochs=1)

    root = edited_course(tiny)
    course = load_course(root)
    with tempfile.TemporaryDirectory() as models:
        submission = build_submission(course, "mlp", course.source_notebook("mlp"), Path(models))

        def accuracy(seed: int) -> float:
            report = grade(course, "mlp", submission, profile="smoke", seed=seed, only=["accuracy"], retry=False)
            return report.environment["metrics"]["test_accuracy"]

        for seed in range(1, 6):  # a seed whose own training is the worse of its two (bounded search)
            first, second = accuracy(seed), accuracy(second_seed(seed))
            if second > first + 0.002:
                break
        else:
            pytest.fail("no seed among 1-5 whose second training is better than its first")
        threshold = round((first + second) / 2, 4)

        def with_threshold(value: float):
            data = yaml.safe_load((root / "course.yml").read_text())
            data["exercises"]["mlp"]["profiles"]["smoke"]["thresholds"]["accuracy"] = value
            (root / "course.yml").write_text(yaml.safe_dump(data, sort_keys=False))
            return grade(load_course(root), "mlp", submission, profile="smoke", seed=seed, only=["accuracy"])

        report = with_threshold(threshold)
        check, retry = report.checks[0], report.environment["retry"]
        assert check.passed and check.points == check.max_points, check.message
        assert retry["seed"] == second_seed(seed) and retry["counted"] == "second" and retry["because"] == ["accuracy"]
        assert retry["first"]["metrics"]["test_accuracy"] == pytest.approx(first, abs=1e-6)
        assert report.environment["metrics"]["test_accuracy"] == pytest.approx(second, abs=1e-6)
        assert f"the grader's first training, seed {seed}, fell short; this is its second, seed {second_seed(seed)}" in check.message
        assert report.environment["seed"] == seed  # --seed reproduces the whole grade, both trainings

        higher = with_threshold(round(max(first, second) + 0.01, 4))  # both trainings fail: the first counts
        assert not higher.checks[0].passed and higher.environment["retry"]["counted"] == "first"
        assert higher.environment["metrics"]["test_accuracy"] == pytest.approx(first, abs=1e-6)
        assert "second" not in higher.checks[0].message


@pytest.mark.slow
def test_wrong_layers_are_not_trained_twice(graded):
    """The logistic baseline fails architecture and accuracy: one training only (the retry is for correct layers)."""
    report = graded("mlp", "logistic")
    assert [c.passed for c in report.checks] == [False, False, False] and report.environment.get("trained")
    assert "retry" not in report.environment
