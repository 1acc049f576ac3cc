"""Question banks, seeded variants, parse/grade, and every generator's self-test and Keras cross-check."""

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from conftest import REPO, impulse_receptive_field
from deepgrade import convmath
from deepgrade.cli import main
from deepgrade.errors import ConfigError
from deepgrade.quiz import GENERATORS, AnswerFormatError, Variant, available, grade, load_bank, make_quiz, parse

BANKS = available(REPO)
STUDENTS = [f"student-{i}" for i in range(40)]


def test_the_four_banks_exist():
    assert set(BANKS) >= {"convolution", "stride_padding", "pooling", "parameters"}


@pytest.mark.parametrize("name", BANKS)
def test_same_id_same_quiz_different_ids_different_numbers(name):
    bank = load_bank(name, REPO)
    assert make_quiz(bank, "alice") == make_quiz(bank, "alice")
    generated = [v for v in make_quiz(bank, "alice").variants if "generator" in v.params]
    if generated:
        quizzes = {tuple(str(v.params) for v in make_quiz(bank, s).variants) for s in STUDENTS}
        assert len(quizzes) > len(STUDENTS) * 0.9


def fixed(name, qid):
    return next(v for v in make_quiz(load_bank(name, REPO), "anyone").variants if v.id == qid)


@pytest.mark.parametrize("bank, qid, text, value", [
    ("convolution", "first-output", "4", 4),
    ("convolution", "x-kernel", "1", 1),
    ("convolution", "sliding-name", "1", "Convolution"),
    ("convolution", "stride-of-diagram", "Stride of 1", "Stride of 1"),
    ("pooling", "max-stride-2", "10 7; 8 12", [[10, 7], [8, 12]]),
    ("pooling", "average-stride-2", "[[5.75, 4.25], [5.25, 8.5]]", [[5.75, 4.25], [5.25, 8.5]]),
    ("pooling", "max-stride-1", "10 7 7; 6 9 9; 8 12 12", [[10, 7, 7], [6, 9, 9], [8, 12, 12]]),
    ("stride_padding", "mnist-c2", "14x14x8", (14, 14, 8)),
    ("stride_padding", "mnist-c3", "(None, 7, 7, 12)", (7, 7, 12)),
    ("stride_padding", "conv128", "14, 14, 128", (14, 14, 128)),
    ("parameters", "two-3x3", "5", 5),
    ("parameters", "conv128-params", "3,328", 3328),
    ("parameters", "mlp-first-dense", "200960", 200960),
])
def test_seed_questions_have_the_seeds_answers(bank, qid, text, value):
    variant = fixed(bank, qid)
    parsed = parse(variant, text)
    assert parsed == value and grade(variant, parsed).correct


def test_seed_answers_agree_with_the_arithmetic_and_keras():
    seed_map = np.array([[10, 7, 1, 4], [0, 6, 5, 7], [2, 5, 9, 6], [6, 8, 12, 7]])
    assert fixed("pooling", "max-stride-2").answer == convmath.pool2d(seed_map, 2, 2, "max").tolist()
    assert fixed("pooling", "average-stride-2").answer == convmath.pool2d(seed_map, 2, 2, "average").tolist()
    assert fixed("pooling", "max-stride-1").answer == convmath.pool2d(seed_map, 2, 1, "max").tolist()
    image = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]])
    x_kernel = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]])
    assert convmath.convolve2d(image, x_kernel)[0, 0] == fixed("convolution", "first-output").answer
    layer = keras.layers.Conv2D(128, 5, strides=(2, 2), padding="same")
    assert list(layer.compute_output_shape((None, 28, 28, 1))[1:]) == fixed("stride_padding", "conv128").answer
    layer.build((None, 28, 28, 1))
    assert layer.count_params() == fixed("parameters", "conv128-params").answer


def test_integer_answers_are_exact_and_floats_have_a_tolerance():
    v = Variant("q", "int", "?", 14, "h", "e")
    assert not grade(v, 15).correct and grade(v, 14).correct
    with pytest.raises(AnswerFormatError, match=r"Expected a whole number, e\.g\. 42\. Received: '14\.5'"):
        parse(v, "14.5")
    f = Variant("q", "float", "?", 5.75, "h", "e", tolerance=0.01)
    assert grade(f, parse(f, "5.755")).correct and not grade(f, parse(f, "5.8")).correct


@pytest.mark.parametrize("kind, text", [("int", "twelve"), ("int", ""), ("matrix", "1 2; 3"), ("matrix", "[[1, 'a']]"),
                                        ("shape", "abc"), ("float", "1/2")])
def test_malformed_answers_are_explained(kind, text):
    v = Variant("q", kind, "?", [[1]] if kind == "matrix" else 1, "h", "e")
    with pytest.raises(AnswerFormatError, match="Expected"):
        parse(v, text)


def test_feedback_does_not_give_the_answer_away():
    v = fixed("pooling", "max-stride-2")
    result = grade(v, parse(v, "10 7; 8 11"))
    assert not result.correct and "12" not in result.feedback
    assert "shape 2x2, yours is 1x2" in grade(v, [[10.0, 7.0]]).feedback  # grade alone; parse never lets it through
    with pytest.raises(AnswerFormatError, match=r"Expected a 2x2 matrix .* Received: 1 row of 2 numbers \(10 7\)\.$"):
        parse(v, "10 7")


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_every_generator_checks_itself(name):
    """PrairieLearn's `test` phase: the right answer passes, a wrong one fails, garbage is a format error."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        made = GENERATORS[name](rng)
        params = made.pop("params")
        v = Variant("q", **made)
        right = v.answer if v.kind != "shape" else tuple(v.answer)
        assert grade(v, right).correct
        wrong = (tuple(x + 1 for x in v.answer) if v.kind == "shape" else
                 (np.array(v.answer) + 1).tolist() if v.kind == "matrix" else v.answer + 1)
        assert not grade(v, wrong).correct
        with pytest.raises(AnswerFormatError):
            parse(v, "not an answer")
        assert v.hint and v.explanation and str(v.answer if v.kind != "matrix" else "") in v.explanation + str(v.answer)
        assert params


def keras_stack_shape(params):
    h, w, c = params["input"]
    model = keras.Sequential([keras.Input((h, w, c))] + [
        keras.layers.Conv2D(layer["filters"], layer["kernel"], strides=layer["stride"], padding=layer["padding"]) if layer["type"] == "conv"
        else keras.layers.MaxPooling2D(layer["pool"], strides=layer["stride"], padding=layer["padding"]) for layer in params["layers"]])
    return list(model(np.zeros((1, h, w, c), "float32")).shape[1:])


def test_generated_answers_agree_with_keras_over_many_students():
    """Every generated question in every bank, for many student ids, recomputed with real Keras layers."""
    checked = 0
    for name in BANKS:
        bank = load_bank(name, REPO)
        for student in STUDENTS:
            for v in make_quiz(bank, student).variants:
                p, gen = v.params, v.params.get("generator")
                if gen == "output_size":
                    layer = keras.layers.Conv2D(8, p["kernel"], strides=p["stride"], padding=p["padding"],
                                                dilation_rate=p["dilation"])
                    assert layer.compute_output_shape((None, p["size"], p["size"], 1))[1] == v.answer >= 1
                elif gen == "stack_shape":
                    assert keras_stack_shape(p) == v.answer and min(v.answer) >= 1
                elif gen == "conv_params":
                    layer = keras.layers.Conv2D(p["filters"], p["kernel"])
                    layer.build((None, 32, 32, p["in_channels"]))
                    assert layer.count_params() == v.answer
                elif gen == "dense_params":
                    layer = keras.layers.Dense(p["units"])
                    layer.build((None, p["in_units"]))
                    assert layer.count_params() == v.answer
                elif gen == "pooling":
                    pool = (keras.layers.MaxPooling2D if p["mode"] == "max" else keras.layers.AveragePooling2D)(
                        2, strides=p["stride"])
                    x = np.array(p["input"], "float32")[None, :, :, None]
                    assert np.allclose(keras.ops.convert_to_numpy(pool(x))[0, :, :, 0], v.answer)
                elif gen == "conv_value":
                    image = np.array(p["image"], "float32")[None, :, :, None]
                    kernel = np.array(p["kernel"], "float32")[:, :, None, None]
                    out = keras.ops.convert_to_numpy(keras.ops.conv(image, kernel, padding="valid"))[0, :, :, 0]
                    assert out[p["row"] - 1, p["column"] - 1] == v.answer
                elif gen == "receptive_field":
                    assert v.answer == impulse_receptive_field([tuple(layer) for layer in p["layers"]], size=96)
                else:
                    continue
                checked += 1
    assert checked >= 400, checked


def write_bank(tmp_path, text):
    (tmp_path / "quizzes").mkdir(exist_ok=True)
    (tmp_path / "quizzes" / "broken.yml").write_text(text)
    return tmp_path


def test_bank_error_names_file_and_question(tmp_path):
    root = write_bank(tmp_path, yaml.safe_dump({"name": "broken", "title": "B", "questions": [
        {"id": "ok", "kind": "int", "prompt": "?", "answer": 1, "hint": "h", "explanation": "e"},
        {"id": "bad-choice", "kind": "choice", "prompt": "?", "choices": ["a", "b"], "answer": "c", "hint": "h",
         "explanation": "e"}]}))
    with pytest.raises(ConfigError) as info:
        load_bank("broken", root)
    text = str(info.value)
    assert "quizzes/broken.yml" in text and "question 2 (id 'bad-choice')" in text
    assert "expected one of the choices ['a', 'b']" in text


def test_bank_unknown_generator_did_you_mean(tmp_path):
    root = write_bank(tmp_path, "name: broken\ntitle: B\nquestions:\n  - {id: g, generator: poolng}\n")
    with pytest.raises(ConfigError, match=r"question 1 \(id 'g'\).*Did you mean 'pooling'"):
        load_bank("broken", root)


def test_unknown_quiz(capsys):
    assert main(["quiz", "poolng", "--student", "a", "--course", str(REPO)]) == 2
    assert "Did you mean 'pooling'" in capsys.readouterr().err


def test_json_for_instructors(capsys):
    assert main(["quiz", "pooling", "--student", "alice", "--json", "--course", str(REPO)]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert out["quiz"] == "pooling" and out["student"] == "alice"
    assert out["questions"][0]["answer"] == [[10, 7], [8, 12]]
    assert {"id", "kind", "prompt", "answer", "hint", "explanation", "params", "tolerance"} <= set(out["questions"][0])


def test_terminal_quiz_end_to_end():
    """A real process, answers on stdin: hints, a malformed answer (asked again), feedback, the score."""
    bank = load_bank("convolution", REPO)
    quiz = make_quiz(bank, "tess")
    # the eight fixed questions (a hint first, a malformed answer asked again), then the generated ones
    answers = ["h", "not a number", "1", "3", "1", "1", "3", "4", "1", "4"]
    answers += [str(v.answer) for v in quiz.variants[8:]]
    proc = subprocess.run([str(Path(sys.executable).parent / "deepgrade"), "quiz", "convolution", "--student", "tess"],
                          input="\n".join(answers) + "\n", capture_output=True, text=True, cwd=REPO, timeout=60,
                          env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr
    assert "hint: It gives convolutional neural networks their name." in out
    assert "Expected one of 1-4 or the text of a choice. Received: 'not a number'" in out
    assert "Score: 11 / 11" in out


@pytest.mark.parametrize("student, received", [("your-id", "Received: 'your-id', the placeholder."),
                                               ("  ", "Received: only blanks ('  ').")])
def test_no_quiz_for_the_placeholder_id(capsys, student, received):
    assert main(["quiz", "pooling", "--student", student, "--course", str(REPO)]) == 2
    err = capsys.readouterr().err
    assert "Expected your own student id" in err and received in err
    with pytest.raises(ConfigError, match="the placeholder"):
        make_quiz(load_bank("pooling", REPO), " Your-ID ")
