"""The RNN exercise end to end, graded by the trusted grader in the smoke profile."""

from deepgrade.grading import grade

from conftest import by_name, graded_solution

CHECKS = ["recurrent", "parameters", "accuracy"]


def test_solution_passes_every_check(course):
    graded_solution(course, "rnn", CHECKS)


def test_stub_fails_every_check_cleanly(course):
    report = grade(course, "rnn", course.release_notebook("rnn"), profile="smoke", seed=1)
    assert report.score == 0 and all("not done yet" in c.message for c in report.checks)


def test_gru_is_not_an_lstm(course, make_submission):
    checks = by_name(grade(course, "rnn", make_submission("rnn", "gru"), profile="smoke", only=["recurrent", "parameters"]))
    assert checks["recurrent"].message.startswith("Layer 2 (GRU ")
    assert checks["recurrent"].message.endswith("expected LSTM(units=128). Received: GRU.")
    assert "Layer 2 (GRU " in checks["parameters"].message and "expected 80,384 parameters" in checks["parameters"].message


def test_units_and_missing_recurrence(course, make_submission):
    checks = by_name(grade(course, "rnn", make_submission("rnn", "lstm64"), profile="smoke", only=["recurrent", "parameters"]))
    assert checks["recurrent"].message.endswith("expected units=128. Received: units=64.")
    assert not checks["parameters"].passed
    checks = by_name(grade(course, "rnn", make_submission("rnn", "no_recurrence"), profile="smoke", only=["recurrent"]))
    assert checks["recurrent"].message.startswith("Expected a recurrent layer: LSTM(units=128)")
    assert "Received: Flatten, Dense." in checks["recurrent"].message
