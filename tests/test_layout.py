"""The import rules between deepgrade's rooms (docs/architecture.md), checked statically with ``ast``.

Fast: nothing is imported or trained, except one child process that imports the sandbox's child the way
the sandbox starts it. Every import statement counts, also one inside a function or under TYPE_CHECKING,
and ``importlib.import_module("deepgrade...")`` / ``__import__`` with a literal name.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
PACKAGE = SRC / "deepgrade"

FRONT_DOORS = {"cli", "nbgrader_ext", "notebook_checks", "calibrate", "demo", "pretrain", "lab", "__main__"}

# room -> the other rooms of deepgrade it may import (itself always allowed; the empty top-level
# ``deepgrade/__init__.py`` is allowed everywhere). Front doors may import anything.
ALLOWED = {
    "errors": set(),
    "convmath": set(),
    "habits": {"errors"},
    "protocol": {"errors"},
    "course": {"errors"},
    "pretrained": {"errors", "protocol", "course"},
    "sandbox": {"errors", "protocol", "course", "pretrained", "habits"},
    "grader": {"errors", "protocol", "course", "pretrained", "sandbox", "habits"},
    "quiz": {"errors", "course", "convmath"},
    "feedback": {"errors", "protocol"},
    "batch": {"errors", "protocol", "course", "grader", "sandbox"},
}
# The grader reaches the sandbox only to build a notebook's submission (grader/run.py) and to start its own
# jail (grader/worker.py; grader/isolated.py asks whether one can be made), inside functions.
GRADER_SANDBOX_MODULES = {"deepgrade.grader.run", "deepgrade.grader.isolated", "deepgrade.grader.worker"}
# The in-notebook checks reach the grader only through the module that runs it in a jail of its own.
NOTEBOOK_GRADER_DOOR = "deepgrade.grader.worker"


@dataclass(frozen=True)
class Import:
    file: Path
    line: int
    source: str      # the statement as written
    target: str      # the deepgrade module it names, absolute
    in_function: bool

    def where(self) -> str:
        return f"{self.file.relative_to(REPO)}:{self.line}: `{self.source}` imports {self.target}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    """``name`` (deepgrade.x.y) is a module or package under src/."""
    base = SRC.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _package_of(path: Path) -> str:
    name = module_name(path)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


BEYOND = "deepgrade.<beyond the top package>"  # a relative import with too many dots (reported as not resolving)


def _resolve_from(node: ast.ImportFrom, path: Path) -> str:
    if not node.level:
        return node.module or ""
    parts = _package_of(path).split(".")
    if node.level - 1 >= len(parts):
        return BEYOND
    base = ".".join(parts[: len(parts) - (node.level - 1)])
    return f"{base}.{node.module}" if node.module else base


def imports_of(path: Path) -> list[Import]:
    """Every deepgrade module ``path`` imports, with the line and whether the import sits in a function."""
    text = path.read_text()
    tree = ast.parse(text, filename=str(path))
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            targets: list[str] = []
            if isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = _resolve_from(child, path)
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if base != BEYOND and alias.name != "*" and is_module(sub) else base)
            elif (isinstance(child, ast.Call) and child.args and isinstance(child.args[0], ast.Constant)
                  and isinstance(child.args[0].value, str)
                  and ((isinstance(child.func, ast.Attribute) and child.func.attr == "import_module")
                       or (isinstance(child.func, ast.Name) and child.func.id in ("import_module", "__import__")))):
                targets = [child.args[0].value]
            for target in targets:
                if target == "deepgrade" or target.startswith("deepgrade."):
                    found.append(Import(path, child.lineno,
                                        " ".join((ast.get_source_segment(text, child) or ast.unparse(child)).split()),
                                        target, in_function))
            visit(child, inside)

    visit(tree, False)
    return found


def room_of(name: str) -> str | None:
    """The room of a deepgrade module: its first component below ``deepgrade`` (None for the package itself)."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else None


def files_of(room: str) -> list[Path]:
    folder = PACKAGE / room
    if folder.is_dir():
        return sorted(folder.rglob("*.py"))
    return [PACKAGE / f"{room}.py"]


def test_every_module_belongs_to_a_room():
    """A new top-level module or package must be given its rules here (and in docs/architecture.md)."""
    known = set(ALLOWED) | FRONT_DOORS
    unknown = sorted(p.relative_to(REPO).as_posix() for p in PACKAGE.iterdir()
                     if (p.suffix == ".py" and p.stem != "__init__" and p.stem not in known)
                     or (p.is_dir() and (p / "__init__.py").is_file() and p.name not in known))
    assert not unknown, f"modules with no import rule in tests/test_layout.py: {unknown}"


@pytest.mark.parametrize("room", sorted(ALLOWED))
def test_room_imports_only_what_it_may(room):
    allowed = ALLOWED[room] | {room}
    files = files_of(room)
    assert files and all(f.is_file() for f in files), f"room {room!r} not found under {PACKAGE}"
    problems = []
    for path in files:
        for imp in imports_of(path):
            target = room_of(imp.target)
            if target is None or target in allowed:
                continue
            if target == "grader" or target in FRONT_DOORS:
                why = "the grader and the front doors sit above it"
            elif not ALLOWED[room]:
                why = f"{room} imports nothing of deepgrade"
            else:
                why = f"{room} may import only deepgrade.{{{', '.join(sorted(allowed))}}}"
            problems.append(f"{imp.where()}; {why}")
    assert not problems, "forbidden imports:\n" + "\n".join(problems)


def test_grader_reaches_the_sandbox_only_to_build_a_notebooks_submission():
    problems = [
        f"{imp.where()}; the grader imports deepgrade.sandbox only inside functions of {GRADER_SANDBOX_MODULES}"
        for path in files_of("grader") for imp in imports_of(path)
        if room_of(imp.target) == "sandbox"
        and (module_name(path) not in GRADER_SANDBOX_MODULES or not imp.in_function)
    ]
    assert not problems, "forbidden imports:\n" + "\n".join(problems)


def test_notebook_checks_never_imports_the_grader():
    """The in-notebook checks run in the student's kernel: the grader runs in a jail (or process) of its own,
    started through grader/worker.py, inside a function."""
    path = PACKAGE / "notebook_checks.py"
    problems = [f"{imp.where()}; notebook_checks starts the grader through {NOTEBOOK_GRADER_DOOR} instead"
                for imp in imports_of(path) if room_of(imp.target) == "grader"
                and (imp.target != NOTEBOOK_GRADER_DOOR or not imp.in_function)]
    assert not problems, "forbidden imports:\n" + "\n".join(problems)


def _top_level_names(init: Path) -> set[str]:
    """Names bound at the top level of a module (assignments, defs, classes, imports, also under if/try)."""
    names: set[str] = set()

    def scan(body):
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                    names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
            elif isinstance(node, (ast.If, ast.Try)):
                scan(node.body)
                scan(getattr(node, "orelse", []))
                for handler in getattr(node, "handlers", []):
                    scan(handler.body)
                scan(getattr(node, "finalbody", []))

    tree = ast.parse(init.read_text())
    scan(tree.body)
    if "__getattr__" in names:  # lazy exports (PEP 562): the keys of its _EXPORTS table, and what it forwards to
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "_EXPORTS" for t in node.targets):
                names.update(ast.literal_eval(node.value))
        forwarded = init.parent / "checks" / "__init__.py"
        if forwarded.is_file():
            names |= _top_level_names(forwarded)
    return names


def test_imports_resolve():
    """Every deepgrade import names a module that exists, or a name its package defines (a moved module
    leaves no import pointing at its old place)."""
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                missing = [a.name for a in node.names if a.name.startswith("deepgrade") and not is_module(a.name)]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve_from(node, path)
                if not (base == "deepgrade" or base.startswith("deepgrade.")):
                    continue
                if base == BEYOND or not is_module(base):
                    missing = [base]
                else:
                    folder = SRC.joinpath(*base.split("."))
                    defined = _top_level_names(folder / "__init__.py") if folder.is_dir() else \
                        _top_level_names(folder.with_suffix(".py"))
                    missing = [f"{base}.{a.name}" for a in node.names
                               if a.name != "*" and not is_module(f"{base}.{a.name}") and a.name not in defined]
            else:
                continue
            for name in missing:
                problems.append(f"{path.relative_to(REPO)}:{node.lineno}: `{ast.unparse(node)}`: "
                                f"no module or name {name}")
    assert not problems, "imports that do not resolve:\n" + "\n".join(problems)


def test_the_sandbox_child_loads_nothing_of_the_grader():
    """What the student's process imports (``python -m deepgrade.sandbox.child``) holds no grader module."""
    code = ("import deepgrade.sandbox.child, sys; "
            "print(sorted(m for m in sys.modules if m.startswith('deepgrade')))")
    path = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": path})
    assert proc.returncode == 0, f"importing deepgrade.sandbox.child failed:\n{proc.stderr[-3000:]}"
    loaded = ast.literal_eval(proc.stdout.strip().splitlines()[-1])
    assert "deepgrade.sandbox.child" in loaded
    graders = [m for m in loaded if m == "deepgrade.grader" or m.startswith("deepgrade.grader.")]
    doors = [m for m in loaded if room_of(m) in FRONT_DOORS]
    assert not graders and not doors, (
        f"importing deepgrade.sandbox.child loads {graders + doors}; the student's side must not "
        f"(see test_room_imports_only_what_it_may[sandbox] for the import that does)")
