"""`deepgrade calibrate`: reference and baselines through the trusted grader, thresholds proposed with a margin."""

from deepgrade.calibrate import Runs, propose, write_section
from deepgrade.cli import main


def test_propose_halfway_between_worst_reference_and_best_baseline():
    ref = Runs("ref", {"test_accuracy": [0.8158, 0.8277, 0.8195]})
    base = Runs("b", {"test_accuracy": [0.7692, 0.7800]}, fails=("accuracy",))
    threshold, why = propose(ref, [base])
    assert threshold == 0.80 and "above the best baseline" in why  # 0.015 below 0.8158, rounded down
    close = Runs("b", {"test_accuracy": [0.81]}, fails=("accuracy",))
    assert propose(ref, [close])[0] == 0.812  # halfway (0.8129) is higher than 0.8008
    assert propose(ref, [Runs("b", {"test_accuracy": [0.82]}, fails=("accuracy",))])[0] is None
    assert propose(ref, [Runs("b", {"test_accuracy": [0.8155]}, fails=("accuracy",))])[0] is None  # no room
    assert propose(ref, [])[0] == 0.80


def test_calibrate_runs_reference_and_baseline_and_writes_a_section(edited_course, capsys):
    def tiny(data):
        data["exercises"]["mlp"]["profiles"]["smoke"].update(train_size=2000, epochs=1)

    root = edited_course(tiny)
    docs = root / "docs" / "calibration.md"
    docs.parent.mkdir()
    docs.write_text("# Calibration\n\nHand-written notes stay.\n")
    assert main(["calibrate", "mlp", "--seeds", "2", "--profile", "smoke", "--course", str(root)]) == 0
    out = capsys.readouterr().out
    assert "| reference solution | test_accuracy |" in out and "| baseline: logistic | test_accuracy |" in out
    assert "Proposed `accuracy` threshold:" in out and "course.yml has 0.8" in out
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
    overfit = Runs("overfit", {"gap": [0.1365, 0.1722]}, fails=("gap",))
    threshold, why = propose(ref, [overfit], "gap")
    assert threshold == 0.106 and "above the reference's worst seed" in why  # 0.015 above 0.0902, rounded up
    assert propose(ref, [Runs("b", {"gap": [0.10]}, fails=("gap",))], "gap")[0] == 0.096  # halfway (0.0951) is lower
    assert propose(ref, [], "gap")[0] == 0.106
    assert propose(ref, [Runs("b", {"gap": [0.09]}, fails=("gap",))], "gap")[0] is None
    assert propose(Runs("ref", {"gain": [0.01, 0.02]}), [], "gain")[0] is None  # a gain must stay above zero
