"""The RNN exercise end to end, graded by the trusted grader in the smoke profile."""

from conftest import by_name, graded_solution

CHECKS = ["recurrent", "parameters", "accuracy"]


def test_solution_passes_every_check(graded):
    graded_solution(graded, "rnn", CHECKS)


def test_stub_fails_every_check_cleanly(graded):
    report = graded("rnn", "stub")
    assert report.score == 0 and all("not done yet" in c.message for c in report.checks)


def test_gru_is_not_an_lstm(checked):
    checks = by_name(checked("rnn", "gru", ["recurrent", "parameters"]))
    assert checks["recurrent"].message.startswith("Layer 2 (GRU ")
    assert checks["recurrent"].message.endswith("expected LSTM(units=128). Received: GRU.")
    assert "Layer 2 (GRU " in checks["parameters"].message and "expected 80,384 parameters" in checks["parameters"].message


def test_units_and_missing_recurrence(checked):
    checks = by_name(checked("rnn", "lstm64", ["recurrent", "parameters"]))
    assert checks["recurrent"].message.endswith("expected units=128. Received: units=64.")
    assert not checks["parameters"].passed
    checks = by_name(checked("rnn", "no_recurrence", ["recurrent"]))
    assert checks["recurrent"].message.startswith("Expected a recurrent layer: LSTM(units=128)")
    assert "Received: Flatten, Dense." in checks["recurrent"].message
