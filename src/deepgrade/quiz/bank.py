"""Question banks (quizzes/*.yml) and the seeded quiz a student gets from one.

A bank is data: fixed questions taken from the course material and entries
naming a generator from :mod:`deepgrade.quiz.questions`. The student id seeds the
variant: the same id always gets the same quiz; different ids get different
numbers. A mistake in a bank names the file and the question.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import ConfigError, did_you_mean, validation_problems
from .questions import GENERATORS, Variant

QUIZ_DIR = "quizzes"
# What the self-check notebook and the docs show in place of an id: nobody's id, so a quiz never starts with it.
PLACEHOLDER_IDS = frozenset({"your-id", "id"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FixedQuestion(_Strict):
    id: str
    source: str = ""
    kind: Literal["int", "float", "matrix", "shape", "choice"]
    prompt: str
    answer: Any
    choices: list[str] = []
    tolerance: Annotated[float, Field(ge=0)] = 0.0
    points: Annotated[float, Field(gt=0)] = 1.0
    hint: str
    explanation: str

    @model_validator(mode="after")
    def _answer_fits_kind(self):
        a, kind = self.answer, self.kind
        ok = {
            "int": isinstance(a, int) and not isinstance(a, bool),
            "float": isinstance(a, (int, float)) and not isinstance(a, bool),
            "choice": isinstance(a, str) and a in self.choices,
            "shape": isinstance(a, list) and a and all(isinstance(x, int) for x in a),
            "matrix": isinstance(a, list) and a and all(isinstance(r, list) and r for r in a)
                      and len({len(r) for r in a}) == 1,
        }[kind]
        if not ok:
            expected = {"choice": f"one of the choices {self.choices}", "int": "a whole number",
                        "float": "a number", "shape": "a list of whole numbers", "matrix": "a list of equal rows"}[kind]
            raise ValueError(f"answer: expected {expected} for kind {kind!r}. Received: {a!r}")
        if kind == "float" and self.tolerance == 0:
            raise ValueError("tolerance: a float answer needs an explicit tolerance > 0")
        return self


class GeneratedQuestion(_Strict):
    id: str
    generator: str
    count: Annotated[int, Field(ge=1, le=20)] = 1
    params: dict[str, Any] = {}
    points: Annotated[float, Field(gt=0)] = 1.0

    @model_validator(mode="after")
    def _known_generator(self):
        if self.generator not in GENERATORS:
            hint = did_you_mean(self.generator, GENERATORS)
            raise ValueError(f"generator: expected one of {sorted(GENERATORS)}. Received: {self.generator!r}."
                             + (f" {hint}" if hint else ""))
        return self


class Bank(_Strict):
    name: str
    title: str
    description: str = ""
    questions: list[FixedQuestion | GeneratedQuestion]


@dataclass(frozen=True)
class Quiz:
    name: str
    title: str
    student: str
    seed: int
    variants: tuple[Variant, ...]

    @property
    def max_score(self) -> float:
        return sum(v.points for v in self.variants)

    def to_dict(self) -> dict:
        return {"quiz": self.name, "title": self.title, "student": self.student, "seed": self.seed,
                "max_score": self.max_score, "questions": [v.to_dict() for v in self.variants]}


def bank_path(name: str, root: Path) -> Path:
    return root / QUIZ_DIR / f"{name}.yml"


def available(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / QUIZ_DIR).glob("*.yml"))


def load_bank(name: str, root: Path) -> Bank:
    path = bank_path(name, root)
    if not path.is_file():
        names = available(root)
        raise ConfigError(f"Unknown quiz: expected one of {', '.join(names) or '(none)'}. Received: {name!r}.",
                          tip=did_you_mean(name, names) or f"Question banks live in {root / QUIZ_DIR}.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with name, title and questions. Received: {type(data).__name__}.")
    raw = data.get("questions") if isinstance(data.get("questions"), list) else []
    try:
        bank = Bank.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path, raw)) from None
    ids = [q.id for q in bank.questions]
    if len(ids) != len(set(ids)):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ConfigError(f"{path}: question ids must be unique. Received duplicates: {dup}.")
    return bank


def _describe(exc: ValidationError, path: Path, raw: list) -> str:
    def where(loc: tuple) -> str:
        if len(loc) >= 2 and loc[0] == "questions" and isinstance(loc[1], int):
            qid = raw[loc[1]].get("id", "?") if loc[1] < len(raw) and isinstance(raw[loc[1]], dict) else "?"
            # pydantic names the union branch ("FixedQuestion"/"GeneratedQuestion"); keep the field path only.
            rest = [str(p) for p in loc[2:] if p not in ("FixedQuestion", "GeneratedQuestion")]
            return f"question {loc[1] + 1} (id {qid!r})" + (f", {'.'.join(rest)}" if rest else "")
        return ".".join(str(p) for p in loc) or "(top level)"

    problems = validation_problems(exc, Bank, where=where)
    return f"{path}: {len(problems)} problem(s):\n" + "\n".join(f"  {p}" for p in problems)


def student_seed(quiz: str, student: str) -> int:
    """A stable seed from the quiz name and the student id (same id, same quiz; across machines)."""
    return int.from_bytes(hashlib.sha256(f"{quiz}\0{student.strip()}".encode()).digest()[:8], "big")


def check_student(student: str | None, *, fix: str = "Give your own id, then start the quiz again.") -> str:
    """The student id, stripped; a ConfigError (what is expected, what was given, ``fix``) when it is empty or still
    a placeholder such as ``your-id``."""
    text = student.strip() if isinstance(student, str) else ""
    expected = ("Expected your own student id (e.g. your e-mail address or matriculation number): it picks your "
                "variant of the quiz.")
    if not text:
        received = "nothing" if not isinstance(student, str) or not student else f"only blanks ({student!r})"
        raise ConfigError(f"{expected} Received: {received}.", tip=fix)
    if text.lower() in PLACEHOLDER_IDS:
        raise ConfigError(f"{expected} Received: {text!r}, the placeholder.", tip=fix)
    return text


def make_quiz(bank: Bank, student: str) -> Quiz:
    student = check_student(student)
    seed = student_seed(bank.name, student)
    rng = np.random.default_rng(seed)
    variants: list[Variant] = []
    for q in bank.questions:
        if isinstance(q, FixedQuestion):
            variants.append(Variant(
                id=q.id, kind=q.kind, prompt=q.prompt.strip(), answer=q.answer, hint=q.hint.strip(),
                explanation=q.explanation.strip(), choices=tuple(q.choices), tolerance=q.tolerance,
                points=q.points, params={"source": q.source} if q.source else {}))
            continue
        for n in range(q.count):
            made = GENERATORS[q.generator](rng, **q.params)
            variants.append(Variant(
                id=f"{q.id}-{n + 1}" if q.count > 1 else q.id, points=q.points,
                params={"generator": q.generator, **made.pop("params")}, **made))
    return Quiz(bank.name, bank.title, student, seed, tuple(variants))
