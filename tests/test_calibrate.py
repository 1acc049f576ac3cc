"""`deepgrade calibrate`: reference and baselines through the trusted grader, thresholds proposed with a margin."""

import json
import os
import re
from pathlib import Path

import pytest

from deepgrade.calibrate import (
    RECORDS,
    Runs,
    add_records,
    from_records,
    markdown,
    propose,
    render,
    section_files,
    write_section,
)
from deepgrade.cli import main
from deepgrade.course import load_course
from deepgrade.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


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
    assert main(["calibrate", "mlp", "--seeds", "2", "--profile", "smoke", "--course", str(root),
                 "--only", "reference solution", "--only", "logistic"]) == 0  # not the answers: the same code path
    captured = capsys.readouterr()
    out = captured.out
    records = root / "docs" / "calibration" / "mlp-smoke.jsonl"
    lines = [json.loads(line) for line in records.read_text().splitlines()]
    assert lines[0]["run"] == 1 and lines[0]["environment"]["train_size"] == 2000 and len(lines) == 5
    assert lines[0]["environment"]["threads"] == os.cpu_count()  # one worker: every core
    assert {(r["model"], r["seed"]) for r in lines[1:]} == {(m, s) for m in ("reference solution", "baseline: logistic")
                                                            for s in (0, 1)}
    assert next(r for r in lines if r.get("model") == "baseline: logistic")["untrained_failures"] == ["architecture",
                                                                                                     "parameters"]
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
    # a later run adds seeds of one model to the records; the section is computed from all of them
    assert main(["calibrate", "mlp", "--seeds", "1", "--first-seed", "2", "--only", "logistic", "--profile", "smoke",
                 "--course", str(root)]) == 0
    text = docs.read_text()
    assert "seeds 0, 1 (baseline: logistic: seeds 0, 1, 2); 2,000 training images" in text
    assert "| baseline: logistic | false pass of `accuracy` | 0/3 | no |" in text
    kept = records.read_text()
    assert main(["calibrate", "mlp", "--seeds", "1", "--only", "reference solution", "--no-write", "--profile", "smoke",
                 "--course", str(root)]) == 0
    assert records.read_text() == kept and "seeds 0; " in capsys.readouterr().out  # printed, nothing kept
    assert main(["calibrate", "mlp", "--only", "logistic", "--no-write", "--course", str(root)]) == 2
    assert "calibrate --no-write computes the result from this run alone, which needs the reference" in capsys.readouterr().err
    assert main(["calibrate", "mlp", "--render", "--only", "logistic", "--course", str(root), "--profile", "smoke"]) == 2
    assert "calibrate --render trains nothing: expected no training options. Received: --only" in capsys.readouterr().err
    assert main(["calibrate", "mlp", "--only", "logistc", "--course", str(root), "--profile", "smoke"]) == 2
    assert ("calibrate --only: expected one of reference solution, logistic, functional, adam_written, one_hot, "
            "rmsprop, adam_slow, slides_sgd. Received: 'logistc'.") in capsys.readouterr().err  # answers too


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


ENV = {"backend": "tensorflow", "device": "cpu", "device_name": "AMD EPYC", "platform": "Linux x86_64", "cpu_count": 2,
       "versions": {"keras": "3.15.1"}, "train_size": 10000, "epochs": 3}


def _trainings(model: str, seeds, accuracy: float, untrained=()) -> dict:
    return {(model, seed): {"metrics": {"test_accuracy": accuracy + seed / 10000}, "untrained_failures": list(untrained)}
            for seed in seeds}


def test_records_add_up_across_runs_and_the_section_is_computed_from_all_of_them(tmp_path):
    course = load_course(ROOT)
    path = tmp_path / "mlp-smoke.jsonl"
    add_records(path, ENV, _trainings("reference solution", range(3), 0.82)
                | _trainings("baseline: logistic", range(2), 0.77, ["architecture"]), when="2026-11-22")
    add_records(path, ENV, _trainings("baseline: logistic", [1, 2], 0.78, ["architecture"]), when="2026-11-23")
    result = from_records(course, "mlp", "smoke", path)
    reference, logistic = result["runs"]
    assert reference.seeds == (0, 1, 2) and logistic.seeds == (0, 1, 2) and not logistic.retried
    assert logistic.values["test_accuracy"] == [0.77, 0.7801, 0.7802]  # seed 1 measured again: the later line counts
    text = markdown(result)
    assert text.startswith("## mlp, smoke profile (`deepgrade calibrate`)\n\nMeasured 2026-11-22, 2026-11-23 on cpu, "
                           "AMD EPYC (Linux x86_64, 2 cores), backend tensorflow, keras 3.15.1; seeds 0, 1, 2; 10,000")
    with pytest.raises(ConfigError) as refused:  # numbers measured with other versions do not add up
        add_records(path, {**ENV, "versions": {"keras": "3.16.0"}}, _trainings("reference solution", [3], 0.8))
    assert ("run 1 measured versions={'keras': '3.15.1'}; this run measures versions={'keras': '3.16.0'}. Expected the "
            "same backend, device, versions and budget for trainings that add up. This run's trainings are kept in "
            f"{tmp_path / 'mlp-smoke.refused-'}") in str(refused.value)
    with pytest.raises(ConfigError):  # refused again: a file per refused run, the first one's trainings kept
        add_records(path, {**ENV, "versions": {"keras": "3.16.0"}}, _trainings("reference solution", [4], 0.8))
    aside = sorted(tmp_path.glob("mlp-smoke.refused-*.jsonl"))
    assert [from_records(course, "mlp", "smoke", a)["runs"][0].seeds for a in aside] == [(3,), (4,)]
    add_records(path, {**ENV, "epochs": 5}, _trainings("reference solution", [0], 0.85), fresh=True)
    assert from_records(course, "mlp", "smoke", path)["runs"][0].values == {"test_accuracy": [0.85]}
    path.write_text(path.read_text() + '{"run": 1, "model": "reference solution", "se')  # a run stopped mid-write
    assert from_records(course, "mlp", "smoke", path)["runs"][0].values == {"test_accuracy": [0.85]}
    add_records(path, {**ENV, "epochs": 5}, _trainings("reference solution", [1], 0.85))  # the cut line goes
    assert from_records(course, "mlp", "smoke", path)["runs"][0].seeds == (0, 1)
    path.write_text(path.read_text() + "not json\n")
    with pytest.raises(ConfigError, match=r"mlp-smoke.jsonl, line 5: expected a calibration record"):
        from_records(course, "mlp", "smoke", path)


def test_records_refuse_what_does_not_add_up(tmp_path):
    from deepgrade.calibrate import Recorder, _seeds

    course = load_course(ROOT)
    path = tmp_path / "mlp-smoke.jsonl"
    add_records(path, ENV, _trainings("reference solution", [0], 0.82))
    add_records(path, ENV, {("reference solution", 1): {"metrics": {"test_accuracy": 0.8, "gap": 0.01}}})
    with pytest.raises(ConfigError, match=r"reference solution has gap on some seeds, not on seeds 0. Expected the same "
                                          r"metrics on every seed"):
        from_records(course, "mlp", "smoke", path)
    # a run is checked against the records at its first training, and stops there, that training kept aside
    recorder = Recorder(tmp_path / "course", "mlp", "smoke")
    recorder.keep("reference solution", 0, {"metrics": {"test_accuracy": 0.8}}, ENV)
    recorder.keep("reference solution", 1, {"metrics": {"test_accuracy": 0.81}}, ENV)
    assert from_records(course, "mlp", "smoke", recorder.path)["runs"][0].seeds == (0, 1)
    late = Recorder(tmp_path / "course", "mlp", "smoke")
    with pytest.raises(ConfigError, match="run 1 measured epochs=3; this run measures epochs=5"):
        late.keep("reference solution", 2, {"metrics": {"test_accuracy": 0.8}}, {**ENV, "epochs": 5})
    assert len(list((tmp_path / "course" / RECORDS).glob("mlp-smoke.refused-*.jsonl"))) == 1
    assert _seeds(list(range(200)) + list(range(300, 310)) + [400]) == "0-199, 300-309, 400: 211 seeds"
    assert _seeds([1, 5, 9]) == "1, 5, 9" and _seeds(range(5)) == "0-4 (5 seeds)"


def test_render_reads_one_file_per_backend_and_never_a_refused_run(tmp_path):
    course = load_course(ROOT)
    folder = tmp_path / RECORDS
    jax = {**ENV, "backend": "jax"}
    add_records(folder / "mlp-smoke.jsonl", ENV, _trainings("reference solution", [0], 0.82))
    add_records(folder / "mlp-smoke-jax-cpu.jsonl", jax, _trainings("reference solution", [0], 0.83))
    with pytest.raises(ConfigError):
        add_records(folder / "mlp-smoke-jax-cpu.jsonl", {**jax, "epochs": 9}, _trainings("reference solution", [0], 0.5))
    add_records(folder / "mlp-smoke-extra-cpu-x.jsonl", ENV, _trainings("reference solution", [0], 0.1))  # not a key
    course.root = tmp_path
    shown = [markdown(r).splitlines()[0] for r in render(course, "mlp", "smoke")]
    assert shown == ["## mlp, smoke profile, jax-cpu (`deepgrade calibrate`)", "## mlp, smoke profile (`deepgrade calibrate`)"]


def test_render_needs_records(tmp_path, edited_course):
    root = edited_course(lambda data: None)
    with pytest.raises(ConfigError, match=r"No calibration records for mlp \(smoke profile\)"):
        render(load_course(root), "mlp", "smoke")


def test_every_calibrated_section_is_what_its_records_give():
    """docs/calibration.md's calibrate sections are generated: from docs/calibration/*.jsonl (every training of
    every seed) at course.yml's thresholds. A changed threshold, a hand edit or a lost record fails here;
    `deepgrade calibrate EXERCISE --render` writes the section again."""
    course = load_course(ROOT)
    text = (ROOT / "docs" / "calibration.md").read_text()
    found = [(exercise, profile, path) for exercise in course.course.exercises for profile in ("smoke", "full")
             for path in section_files(ROOT, exercise, profile)]
    assert {(exercise, profile) for exercise, profile, _ in found} >= {(ex, "smoke") for ex in course.course.exercises}
    for exercise, profile, path in found:
        result = from_records(course, exercise, profile, path)
        key = f"{exercise}:{profile}" + path.stem.removeprefix(f"{exercise}-{profile}").replace("-", ":", 1)
        section = re.search(rf"<!-- calibrate {re.escape(key)} -->\n(.*?)<!-- /calibrate {re.escape(key)} -->", text, re.S)
        assert section, f"docs/calibration.md has no section {key} for {path.name}"
        assert section[1] == markdown(result), (f"docs/calibration.md's section {key} is not what {path.name} gives: "
                                                f"run `deepgrade calibrate {exercise} --profile {profile} --render`")


def test_each_answer_students_give_gets_its_verdict_rate_and_bound():
    """An answer that must earn full marks is measured as the reference is (a training check failed twice under
    the retry rule); one that must fail a check as a baseline is (a false pass); each with its 95% bound, and the
    verdict is decided by the model only when that bound is at most 1/1000. An answer that must pass also bounds
    the proposed threshold, as the reference does."""
    from deepgrade.calibrate import ANSWER, markdown, propose_by_rule, rates

    ref = Runs("reference solution", {"gap": [0.08] * 200})
    overfit = Runs("baseline: overfit", {"gap": [0.15] * 200}, fails=("gap",), retried=False, structural=("gap",))
    sure = Runs(ANSWER + "dropout", {"gap": [0.09] * 199 + [0.125]})
    edge = Runs(ANSWER + "batchnorm", {"gap": [0.11] * 150 + [0.13] * 50})
    weak = Runs(ANSWER + "l2", {"gap": [0.16] * 199 + [0.11]}, fails=("gap",))
    found = rates([ref, overfit, sure, edge, weak], {"gap": 0.12})
    assert list(found["baselines"]) == [("baseline: overfit", "gap")] and set(found["answers"]) == {
        ANSWER + "dropout", ANSWER + "batchnorm", ANSWER + "l2"}
    dropout, batchnorm, l2 = (found["answers"][ANSWER + n] for n in ("dropout", "batchnorm", "l2"))
    assert (dropout.full.k, dropout.full.n) == (1, 200) and dropout.holds  # 1/200 once: 2.5e-5, bound 5.6e-4
    assert (batchnorm.full.k, batchnorm.wrong.estimate) == (50, 0.0625) and not batchnorm.holds  # a coin flip
    assert l2.wrong.k == 1 and l2.wrong.estimate == pytest.approx(1 - (199 / 200) ** 2) and not l2.holds
    text = markdown({"exercise": "regularization", "profile": "smoke", "seeds": list(range(200)),
                     "runs": [ref, overfit, sure, edge, weak], "thresholds": {}, "current": {"gap": 0.12},
                     "rates": found, "environment": {"device": "cpu"}})
    assert "| dropout | full marks | 1/200 | 2.50e-05 | 5.52e-04 | 0.99997, at least 0.99945 | yes |" in text
    assert "| batchnorm | full marks | 50/200 | 6.25e-02 |" in text and text.count("| **no** |") == 2
    assert "| l2 | fails `gap` | 1/200 | 9.97e-03 | 4.64e-02 | at most 0.04644 | **no** |" in text
    # the passing answer's allowed tail (0.09: 2 of its 200 seeds may lie past it) bounds the room as the reference's
    # does, the failing answer's best seed (0.11) from the other side: the threshold is the middle, 0.1
    assert propose_by_rule(ref, [overfit, sure, weak], "gap")[0] == 0.1
    assert propose_by_rule(ref, [overfit, weak], "gap")[0] == 0.095  # without it: the reference's 0.08 + MARGIN
    crowded = Runs(ANSWER + "late", {"gap": [0.14] * 200})  # must pass, but lies beyond a baseline's reach
    assert propose_by_rule(ref, [Runs("baseline: b", {"gap": [0.13] * 200}, fails=("gap",)), crowded], "gap")[0] is None
