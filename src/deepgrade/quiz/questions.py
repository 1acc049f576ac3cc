"""Quiz questions in the PrairieLearn shape: generate a variant, parse an answer, grade it.

A :class:`Variant` is one concrete question a student sees: fixed questions
from the seeds have one variant; generators (``GENERATORS``) make a new one
from a seeded random generator. Parameters are chosen first and the answer is
computed from exactly those numbers with :mod:`deepgrade.convmath`.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import convmath

KINDS = ("int", "float", "matrix", "shape", "choice")


class AnswerFormatError(ValueError):
    """The answer could not be read (bad text, or the wrong count of numbers); it costs no attempt."""


FREE = "This attempt is free; answer again."  # what every delivery adds to a format error


def answer_dims(kind: str, answer: Any) -> tuple[int, ...]:
    """How many numbers a well-formed answer has: ``(n,)`` for a shape of n numbers, ``(rows, columns)`` for a
    matrix, ``()`` for the other kinds or when the answer is not known. Not secret: the prompt implies it."""
    if kind == "shape" and isinstance(answer, (list, tuple)) and answer:
        return (len(answer),)
    if kind == "matrix" and isinstance(answer, (list, tuple)) and answer and isinstance(answer[0], (list, tuple)):
        return (len(answer), len(answer[0]))
    return ()


@dataclass(frozen=True)
class Variant:
    id: str
    kind: str
    prompt: str
    answer: Any
    hint: str
    explanation: str
    params: dict = field(default_factory=dict)
    choices: tuple[str, ...] = ()
    tolerance: float = 0.0
    points: float = 1.0

    @property
    def dims(self) -> tuple[int, ...]:
        return answer_dims(self.kind, self.answer)

    def to_dict(self) -> dict:
        return {
            "id": self.id, "kind": self.kind, "prompt": self.prompt, "answer": self.answer,
            "choices": list(self.choices), "tolerance": self.tolerance, "points": self.points,
            "hint": self.hint, "explanation": self.explanation, "params": self.params, "dims": list(self.dims),
        }


@dataclass(frozen=True)
class Result:
    correct: bool
    score: float
    feedback: str


# -- what a well-formed answer looks like (from the kind and the count only, never the answer's values) --------

_SHAPE_EXAMPLES = {1: (10,), 2: (28, 28), 3: (28, 28, 1), 4: (32, 28, 28, 1)}


def shape_example(n: int) -> tuple[int, ...]:
    """An example shape of ``n`` numbers, the same whatever the answer (so it tells nothing about it)."""
    return _SHAPE_EXAMPLES.get(n, (2,) * n)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def example_matrix(rows: int, columns: int) -> list[list[int]]:
    """1 2; 3 4 for 2x2: an example of the size, the same whatever the answer."""
    return [[r * columns + c + 1 for c in range(columns)] for r in range(rows)]


def answer_form(kind: str, dims: tuple[int, ...] = (), choices: int = 0) -> str:
    """What follows "Expected" when the text cannot be read at all, e.g. 'a whole number, e.g. 42'."""
    dims = tuple(dims)
    if kind == "int":
        return "a whole number, e.g. 42"
    if kind == "float":
        return "a number, e.g. 0.5"
    if kind == "choice":
        return f"one of 1-{choices} or the text of a choice"
    if kind == "shape":
        if not dims:
            return "a shape such as (5, 5, 3) or 5x5x3"
        ex = shape_example(dims[0])
        return (f"a shape such as ({', '.join(map(str, ex))}{',' if len(ex) == 1 else ''}) or "
                f"{'x'.join(map(str, ex))}: {_plural(dims[0], 'whole number')}")
    if kind == "matrix":
        if not dims:
            return "a matrix: rows separated by ';', e.g. '1 2; 3 4', or [[1, 2], [3, 4]]"
        ex = example_matrix(*dims)
        return (f"a {dims[0]}x{dims[1]} matrix: rows separated by ';', e.g. "
                f"'{'; '.join(' '.join(map(str, row)) for row in ex)}', or {ex}")
    raise ValueError(f"unknown kind {kind!r}")


def answer_count(kind: str, dims: tuple[int, ...]) -> str:
    """What follows "Expected" when the text is read but has the wrong count of numbers ('' if no count)."""
    dims = tuple(dims)
    if kind == "shape" and dims:
        ex = shape_example(dims[0])
        return f"{_plural(dims[0], 'number')} (a {dims[0]}-D shape, e.g. {' '.join(map(str, ex))})"
    if kind == "matrix" and dims:
        ex = example_matrix(*dims)
        return (f"a {dims[0]}x{dims[1]} matrix ({_plural(dims[0], 'row')} of {_plural(dims[1], 'number')}, "
                f"e.g. {'; '.join(' '.join(map(str, row)) for row in ex)})")
    return ""


def _num_text(x: float) -> str:
    """A number as the student would write it (the page's JavaScript writes it the same way)."""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


# -- parse ------------------------------------------------------------------------------

_NUMBER = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$")  # ASCII digits, as in the page
_DIGITS = re.compile(r"^[0-9]+$")


def _is_number(text: str) -> bool:
    return bool(_NUMBER.match(text)) and math.isfinite(float(text))


def _number(text: str, *, integer: bool) -> int | float:
    text = text.strip().replace(",", "") if integer else text.strip()
    if not _is_number(text):
        raise AnswerFormatError(f"Expected {answer_form('int' if integer else 'float')}. Received: {text!r}.")
    value = float(text)
    if integer:
        if value != int(value):
            raise AnswerFormatError(f"Expected {answer_form('int')}. Received: {text!r}.")
        return int(value)
    return value


def parse(variant: Variant, text: str, dims: tuple[int, ...] | None = None) -> Any:
    """Read the student's text as a value of the variant's kind, or raise AnswerFormatError.

    ``dims`` (default: the variant's, from its answer) is how many numbers a shape or matrix answer has: a
    wrong count is a format error that says what was expected, never the answer's values."""
    dims = variant.dims if dims is None else tuple(dims)
    text = str(text).strip()
    if not text:
        raise AnswerFormatError("Expected an answer. Received: nothing.")
    if variant.kind == "int":
        return _number(text, integer=True)
    if variant.kind == "float":
        return _number(text, integer=False)
    if variant.kind == "choice":
        if _DIGITS.match(text) and 1 <= int(text) <= len(variant.choices):
            return variant.choices[int(text) - 1]
        for choice in variant.choices:
            if choice.lower() == text.lower():
                return choice
        raise AnswerFormatError(f"Expected {answer_form('choice', choices=len(variant.choices))}. Received: {text!r}.")
    if variant.kind == "shape":
        parts = [p for p in re.split(r"[\s,x×()\[\]]+", text.lower()) if p and p != "none"]
        if not parts or not all(_DIGITS.match(p) for p in parts):
            raise AnswerFormatError(f"Expected {answer_form('shape', dims)}. Received: {text!r}.")
        value = tuple(int(p) for p in parts)
        if dims and len(value) != dims[0]:
            raise AnswerFormatError(f"Expected {answer_count('shape', dims)}. Received: "
                                    f"{_plural(len(value), 'number')} ({' '.join(map(str, value))}).")
        return value
    if variant.kind == "matrix":
        return _matrix(text, dims)
    raise ValueError(f"unknown kind {variant.kind!r}")


def _finite(x: Any) -> bool:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return False
    try:
        return math.isfinite(float(x))
    except OverflowError:
        return False


def _matrix(text: str, dims: tuple[int, ...]) -> list[list[float]]:
    try:
        if text.startswith("["):
            value = ast.literal_eval(text)
            if isinstance(value, list) and value and all(_finite(x) for x in value):
                value = [value]  # a flat list is one row
        else:
            value = [row.replace(",", " ").split() for row in re.split(r"[;\n]", text) if row.strip()]
            if not all(_is_number(x) for row in value for x in row):
                raise ValueError("not a number")
            value = [[float(x) for x in row] for row in value]
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        value = None
    ok = (isinstance(value, list) and value and all(isinstance(r, (list, tuple)) and r for r in value)
          and len({len(r) for r in value}) == 1 and all(_finite(x) for r in value for x in r))
    if not ok:
        raise AnswerFormatError(f"Expected {answer_form('matrix', dims)}. Received: {text!r}.")
    rows = [[float(x) for x in row] for row in value]
    if dims and (len(rows), len(rows[0])) != tuple(dims):
        given = "; ".join(" ".join(_num_text(x) for x in row) for row in rows)
        raise AnswerFormatError(f"Expected {answer_count('matrix', dims)}. Received: {_plural(len(rows), 'row')} "
                                f"of {_plural(len(rows[0]), 'number')} ({given}).")
    return rows


# -- grade ------------------------------------------------------------------------------

def grade(variant: Variant, value: Any) -> Result:
    """Score a parsed value. Feedback says what was wrong without giving the answer away."""
    right = _equal(variant, value)
    if right:
        return Result(True, variant.points, "Correct.")
    # parse() turns a wrong count into a format error; these two lines guard callers that grade a value directly
    if variant.kind == "matrix" and np.shape(value) != np.shape(variant.answer):
        return Result(False, 0.0, f"Not quite: the result has shape {np.shape(variant.answer)[0]}x"
                                  f"{np.shape(variant.answer)[1]}, yours is {np.shape(value)[0]}x{np.shape(value)[1]}.")
    if variant.kind == "shape" and len(value) != len(variant.answer):
        return Result(False, 0.0, f"Not quite: give {len(variant.answer)} numbers (height, width, channels).")
    return Result(False, 0.0, f"Not quite. Hint: {variant.hint}")


def _equal(variant: Variant, value: Any) -> bool:
    answer = variant.answer
    if variant.kind in ("int", "choice"):
        return value == answer
    if variant.kind == "shape":
        return tuple(value) == tuple(answer)
    if variant.kind == "float":
        return math.isclose(value, answer, abs_tol=variant.tolerance)
    if variant.kind == "matrix":
        return np.shape(value) == np.shape(answer) and bool(np.allclose(value, answer, rtol=0, atol=variant.tolerance))
    return False


# -- generators ---------------------------------------------------------------------------

def _matrix_text(m) -> str:
    return "\n".join("  " + " ".join(f"{x:>3g}" for x in row) for row in np.asarray(m).tolist())


def gen_output_size(rng: np.random.Generator, *, sizes=(7, 64), kernels=(1, 7), strides=(1, 4),
                    dilations=(1, 3), paddings=("valid", "same")) -> dict:
    padding = str(rng.choice(list(paddings)))
    stride = int(rng.integers(strides[0], strides[1] + 1))
    # Keras refuses strides > 1 together with dilation > 1: such a question is never generated.
    dilation = 1 if stride > 1 else int(rng.integers(dilations[0], dilations[1] + 1))
    kernel = int(rng.integers(kernels[0], kernels[1] + 1))
    span = dilation * (kernel - 1) + 1
    size = int(rng.integers(max(sizes[0], span), sizes[1] + 1))
    answer = convmath.conv_output_size(size, kernel, stride, padding, dilation)
    dil = f", dilation_rate={dilation}" if dilation > 1 else ""
    if padding == "same":
        why = f"With padding='same' the output is ceil(input / stride) = ceil({size} / {stride}) = {answer}."
    else:
        why = (f"With padding='valid' the kernel spans {span} pixels (dilation x (kernel - 1) + 1), so the output is "
               f"floor(({size} - {span}) / {stride}) + 1 = {answer}.")
    return dict(
        kind="int", params=dict(size=size, kernel=kernel, stride=stride, padding=padding, dilation=dilation),
        prompt=(f"A {size}x{size} feature map goes through Conv2D(filters=8, kernel_size={kernel}, strides={stride}, "
                f"padding='{padding}'{dil}). What is the height of the output?"),
        answer=answer,
        hint="'same' keeps ceil(input / stride); 'valid' only counts positions where the whole kernel fits.",
        explanation=why)


def gen_stack_shape(rng: np.random.Generator, *, size=(16, 64), channels=(1, 3), depth=(2, 4)) -> dict:
    h = int(rng.integers(size[0], size[1] + 1))
    c = int(rng.choice(list(range(channels[0], channels[1] + 1))))
    layers, text = [], []
    current = h
    for _ in range(int(rng.integers(depth[0], depth[1] + 1))):
        if rng.random() < 0.7 or current < 4:
            kernel = int(rng.choice([1, 3, 5]))
            stride = int(rng.choice([1, 1, 2]))
            padding = str(rng.choice(["valid", "same"]))
            if padding == "valid" and kernel > current:
                padding = "same"
            filters = int(rng.choice([4, 8, 12, 16, 32, 64]))
            layer = dict(type="conv", filters=filters, kernel=kernel, stride=stride, padding=padding)
            text.append(f"Conv2D({filters}, {kernel}, strides={stride}, padding='{padding}')")
        else:
            layer = dict(type="maxpool", pool=2, stride=2, padding="valid")
            text.append("MaxPooling2D(pool_size=2)")
        layers.append(layer)
        current = convmath.conv_stack_shapes(current, current, c, [layer])[0][0]
        if current < 2:
            break
    shapes = convmath.conv_stack_shapes(h, h, c, layers)
    steps = "; ".join(f"{t} -> {s[0]}x{s[1]}x{s[2]}" for t, s in zip(text, shapes, strict=True))
    return dict(
        kind="shape", params=dict(input=[h, h, c], layers=layers),
        prompt=f"An input of shape ({h}, {h}, {c}) goes through, in order: " + ", ".join(text)
               + ". What is the output shape (height, width, channels)?",
        answer=list(shapes[-1]),
        hint="Work layer by layer: each Conv2D sets the channels to its filters; pooling keeps the channels.",
        explanation=f"Layer by layer: {steps}.")


def gen_conv_params(rng: np.random.Generator, *, in_channels=(1, 3, 8, 16, 32, 64), filters=(4, 8, 16, 32, 64, 128),
                    kernels=(1, 3, 5, 7)) -> dict:
    cin, f, k = (int(rng.choice(list(x))) for x in (in_channels, filters, kernels))
    answer = convmath.conv2d_params(cin, f, k)
    return dict(
        kind="int", params=dict(in_channels=cin, filters=f, kernel=k), answer=answer,
        prompt=f"How many trainable parameters does Conv2D({f}, {k}) have on an input with {cin} channel(s)?",
        hint="Each filter has kernel_height x kernel_width x input_channels weights, plus one bias.",
        explanation=f"{k} x {k} x {cin} weights x {f} filters + {f} biases = {answer}.")


def gen_dense_params(rng: np.random.Generator, *, inputs=(10, 3136), units=(8, 16, 32, 64, 128, 200, 256, 512)) -> dict:
    n = int(rng.integers(inputs[0], inputs[1] + 1))
    u = int(rng.choice(list(units)))
    answer = convmath.dense_params(n, u)
    return dict(
        kind="int", params=dict(in_units=n, units=u), answer=answer,
        prompt=f"How many trainable parameters does Dense({u}) have after a layer with {n} outputs?",
        hint="One weight per (input, unit) pair, plus one bias per unit.",
        explanation=f"{n} x {u} weights + {u} biases = {answer}.")


def gen_pooling(rng: np.random.Generator, *, size=4, values=(0, 12), strides=(1, 2), modes=("max", "average")) -> dict:
    x = rng.integers(values[0], values[1] + 1, size=(size, size))
    mode = str(rng.choice(list(modes)))
    stride = int(rng.choice(list(strides)))
    answer = convmath.pool2d(x, 2, stride, mode)
    name = "MaxPooling2D" if mode == "max" else "AveragePooling2D"
    return dict(
        kind="matrix", tolerance=0.01, params=dict(input=x.tolist(), mode=mode, pool=2, stride=stride),
        prompt=(f"Apply {name}(pool_size=2, strides={stride}) to this {size}x{size} feature map:\n{_matrix_text(x)}\n"
                "Give the result, rows separated by ';'."),
        answer=answer.tolist(),
        hint=f"Slide a 2x2 window by {stride} pixel(s); take the {'largest value' if mode == 'max' else 'mean'} of each window.",
        explanation=f"The windows give:\n{_matrix_text(answer)}")


def gen_conv_value(rng: np.random.Generator, *, size=5, kernel=3, values=(0, 1), weights=(-1, 2)) -> dict:
    image = rng.integers(values[0], values[1] + 1, size=(size, size))
    k = rng.integers(weights[0], weights[1] + 1, size=(kernel, kernel))
    out = convmath.convolve2d(image, k)
    i, j = (int(v) for v in rng.integers(0, out.shape[0], size=2))
    window = image[i:i + kernel, j:j + kernel]
    terms = " + ".join(f"{a}*{b}" for a, b in zip(window.ravel().tolist(), k.ravel().tolist(), strict=True))
    return dict(
        kind="int", params=dict(image=image.tolist(), kernel=k.tolist(), row=i + 1, column=j + 1),
        prompt=(f"A {kernel}x{kernel} kernel\n{_matrix_text(k)}\nslides (stride 1, no padding) over the image\n"
                f"{_matrix_text(image)}\nWhat is the output at row {i + 1}, column {j + 1}?"),
        answer=int(out[i, j]),
        hint=f"Put the kernel on the image with its top-left corner at row {i + 1}, column {j + 1}; "
             "multiply the overlapping numbers and add them up.",
        explanation=f"{terms} = {int(out[i, j])}.")


def gen_receptive_field(rng: np.random.Generator, *, depth=(2, 4), kernels=(3, 5), strides=(1, 2)) -> dict:
    layers = [(int(rng.choice(list(kernels))), int(rng.choice(list(strides))), 1)
              for _ in range(int(rng.integers(depth[0], depth[1] + 1)))]
    answer = convmath.receptive_field(layers)
    text = ", ".join(f"Conv2D(kernel_size={k}, strides={s})" for k, s, _ in layers)
    return dict(
        kind="int", params=dict(layers=[list(x) for x in layers]), answer=answer,
        prompt=f"A stack of {text} (in this order). How many input pixels wide is the receptive field of one "
               "output pixel of the last layer?",
        hint="Start at 1; each layer adds (kernel - 1) x (product of the strides of the layers before it).",
        explanation="1 + " + " + ".join(f"({k} - 1) x {int(np.prod([s for _, s, _ in layers[:i]]))}"
                                      for i, (k, _, _) in enumerate(layers)) + f" = {answer}.")


GENERATORS: dict[str, Callable[..., dict]] = {
    "output_size": gen_output_size,
    "stack_shape": gen_stack_shape,
    "conv_params": gen_conv_params,
    "dense_params": gen_dense_params,
    "pooling": gen_pooling,
    "conv_value": gen_conv_value,
    "receptive_field": gen_receptive_field,
}
