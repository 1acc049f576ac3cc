"""The CNN exercise end to end: both parts, graded by the trusted grader in the smoke profile."""


from conftest import by_name, graded_solution

CHECKS = ["architecture", "parameters", "output_shapes", "accuracy", "strided_shapes", "strided_parameters"]
NO_TRAINING = [c for c in CHECKS if c != "accuracy"]


def test_solution_passes_every_check(graded):
    report = graded_solution(graded, "cnn", CHECKS)
    assert report.score == report.max_score == 9


def test_stub_fails_every_check_cleanly(graded):
    report = graded("cnn", "stub")
    assert report.score == 0 and [c.name for c in report.checks] == CHECKS
    for c in report.checks:
        assert "not done yet" in c.message and "Traceback" not in c.message
    assert "build_strided_model()" in by_name(report)["strided_shapes"].message
    assert "build_model()" in by_name(report)["architecture"].message


def test_functional_answer_passes_without_training(checked):
    report = checked("cnn", "correct", NO_TRAINING)
    assert report.passed and len(report.checks) == 5


def test_valid_padding_in_the_strided_part_names_the_layer(checked):
    checks = by_name(checked("cnn", "strided_valid_padding", NO_TRAINING))
    assert checks["architecture"].passed and checks["output_shapes"].passed
    assert checks["strided_shapes"].message.startswith("Layer 2 (Conv2D ")
    assert "expected output shape (None, 14, 14, 8). Received: (None, 13, 13, 8)." in checks["strided_shapes"].message
    # 13x13 still becomes 7x7 after the next stride-2 'same' layer: the parameter count is right all the same
    assert checks["strided_parameters"].passed


def test_one_unwritten_function_does_not_zero_the_other(checked):
    checks = by_name(checked("cnn", "kernel5_no_strided", NO_TRAINING))
    assert "Layer 1 (Conv2D " in checks["architecture"].message
    assert "expected kernel_size=(3, 3). Received: kernel_size=(5, 5)." in checks["architecture"].message
    assert "expected output shape (None, 26, 26, 64). Received: (None, 24, 24, 64)." in checks["output_shapes"].message
    assert "expected 640 parameters" in checks["parameters"].message
    for name in ("strided_shapes", "strided_parameters"):
        assert checks[name].message.startswith("build_strided_model() raised NotImplementedError")
