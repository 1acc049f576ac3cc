"""`deepgrade calibrate`: reference and baselines through the trusted grader, thresholds proposed with a margin."""

import pytest

from deepgrade.calibrate import Runs, propose, write_section
from deepgrade.cli import main


def test_propose_leaves_room_for_unlucky_seeds():
    """Grades draw a fresh seed: the threshold sits MARGIN below the worst seed and 4 deviations below the mean."""
    ref = Runs("ref", {"test_accuracy": [0.8158, 0.8277, 0.8195]})  # mean 0.8210, sd 0.0061
    threshold, why = propose(ref, [Runs("b", {"test_accuracy": [0.7692, 0.7750, 0.7800]}, fails=("accuracy",))])
    assert threshold == 0.796 and "4.1 standard deviations below its mean, 0.0160 above the best baseline" in why
    tight = Runs("ref", {"test_accuracy": [0.8158, 0.8170, 0.8165, 0.8161]})
    assert propose(tight, [])[0] == 0.80  # 0.015 below 0.8158 is the lower bound here, rounded down
    assert propose(ref, [Runs("b", {"test_accuracy": [0.79]}, fails=("accuracy",))])[0] == 0.796
    assert propose(ref, [Runs("b", {"test_accuracy": [0.797]}, fails=("accuracy",))])[0] is None  # no room
    collapsing = Runs("b", {"test_accuracy": [0.20, 0.75, 0.20, 0.74]}, fails=("accuracy",))  # at chance on some seeds
    assert propose(ref, [collapsing])[0] == 0.796  # its best seed decides, not its (bimodal) spread
    why = propose(ref, [Runs("b", {"test_accuracy": [0.70, 0.80]}, fails=("accuracy",))])[1]
    assert why.startswith("cannot separate: the reference needs a threshold at or below 0.796") and "reaches 0.8000" in why
    one, why = propose(Runs("ref", {"test_accuracy": [0.8158]}), [])
    assert one == 0.80 and "no spread measured (one seed, or all equal)" in why
    wide = Runs("ref", {"test_accuracy": [0.7996, 0.8048, 0.8102, 0.8040, 0.8036, 0.8054, 0.8122, 0.8090, 0.7892, 0.7982]})
    assert propose(wide, [])[0] == 0.774  # 4.4 deviations below the mean: lower than 0.015 below the worst seed


@pytest.mark.slow
def test_calibrate_runs_reference_and_baseline_and_writes_a_section(edited_course, capsys):
    def tiny(data):
        data["exercises"]["mlp"]["profiles"]["smoke"].update(train_size=2000, epochs=1)

    root = edited_course(tiny)
    docs = root / "docs" / "calibration.md"
    docs.parent.mkdir()
    docs.write_text("# Calibration\n\nHand-written notes stay.\n")
    assert main(["calibrate", "mlp", "--seeds", "2", "--profile", "smoke", "--course", str(root)]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "reference solution, seed 1 (2/4, " in captured.err and "baseline: logistic, seed 0 (3/4, " in captured.err
    assert "| reference solution | test_accuracy |" in out and "| baseline: logistic | test_accuracy |" in out
    assert "| reference solution | false fail (any training check) | " in out  # the rates, at course.yml's threshold
    assert "| baseline: logistic | false pass of `accuracy` | " in out and "| no |" in out  # wrong layers: one training
    assert "Proposed `accuracy` threshold:" in out and "2 seeds are too few to show the retry rule's bound" in out
    text = docs.read_text()
    assert "Hand-written notes stay." in text and text.count("<!-- calibrate mlp:smoke -->") == 1
    assert "seeds 0, 1; 2,000 training images, 1 epochs" in text
    write_section(docs, _one_seed_result())
    again = docs.read_text()
    assert again.count("<!-- calibrate mlp:smoke -->") == 1 and "seeds 0; " in again  # replaced, not appended
    assert "Hand-written notes stay." in again


def _one_seed_result() -> dict:
    """A minimal calibrate() result for the same exercise and profile (to rewrite its section)."""
    return {"exercise": "mlp", "profile": "smoke", "seeds": [0], "runs": [Runs("reference solution", {"test_accuracy": [0.8]})],
            "thresholds": {"accuracy": (0.785, "test")}, "current": {"accuracy": 0.8},
            "environment": {"train_size": 2000, "epochs": 1, "device": "cpu"}}


def test_propose_a_maximum_gap_mirrors_the_rule():
    ref = Runs("ref", {"gap": [0.0848, 0.0857, 0.0902]})
    overfit = Runs("overfit", {"gap": [0.1365, 0.1559, 0.1722]}, fails=("gap",))
    threshold, why = propose(ref, [overfit], "gap")
    assert threshold == 0.106 and "above the reference's worst seed" in why and "0.0305 below the best baseline" in why
    assert propose(ref, [], "gap")[0] == 0.106
    assert propose(ref, [Runs("b", {"gap": [0.10]}, fails=("gap",))], "gap")[0] is None
    assert propose(ref, [Runs("b", {"gap": [0.1365, 0.1722]}, fails=("gap",))], "gap")[0] == 0.106
    assert propose(Runs("ref", {"gain": [0.01, 0.02]}), [], "gain")[0] is None  # a gain must stay above zero


def test_the_rule_puts_the_threshold_between_the_reference_and_the_baselines():
    """With enough seeds the threshold lets at most the allowed few reference seeds below it (here 2 of 200, whose
    bound squared is under 1/1000), stays above every baseline seed, and sits in the middle of that room, at most
    MARGIN from the reference's tail."""
    from deepgrade.calibrate import propose_by_rule, upper_bound

    ref = Runs("ref", {"test_accuracy": [0.7941, 0.7947] + [0.7960] + [0.82] * 197})
    logistic = Runs("b", {"test_accuracy": [0.7869] + [0.77] * 199}, fails=("accuracy",))
    threshold, why = propose_by_rule(ref, [logistic])
    assert threshold == 0.792 and "0 of 200 reference seeds below it (at most 2 allowed" in why
    assert upper_bound(2, 200) ** 2 <= 1e-3 < upper_bound(3, 200) ** 2
    crowded = Runs("b", {"test_accuracy": [0.797] + [0.77] * 199}, fails=("accuracy",))
    assert propose_by_rule(ref, [crowded])[0] is None  # no room: a baseline reaches past the reference's tail
    gap = propose_by_rule(Runs("ref", {"gap": [0.08] * 199 + [0.10]}), [Runs("o", {"gap": [0.13] * 200}, fails=("gap",))],
                          "gap")
    assert gap[0] == 0.095  # mirrored: 0.08 (2 reference seeds may lie above) + MARGIN, nearer than the middle, 0.105
    far = Runs("b", {"test_accuracy": [0.55] * 200}, fails=("accuracy",))  # a baseline far below (rnn's sgd_slow)
    assert propose_by_rule(ref, [far])[0] == 0.781  # MARGIN below the reference's allowed tail, not the middle
