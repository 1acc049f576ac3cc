"""What of a notebook the graded functions need: the statements to run, and why each one runs.

A student's notebook holds the answer (``build_model()``) and everything else a course teaches: loading the
data, training, plots, magics, shell and Colab lines. Grading runs only what the graded functions need. This
module reads the notebook the way IPython does (its own input transformer turns ``%magic`` and ``!shell`` lines
into calls; the body of a cell magic such as ``%%time`` is code), splits each cell into top-level statements,
and walks back from the names the grader reads at the end (the entry functions, the options function):

- a name read is resolved to the statements before the read that define it (assignment, ``def``, ``import``,
  ``for``, ``with``, ``global`` inside a called function, ...) or change it (``x.append``, ``x[0] = ``,
  ``x.attr = ``, a method call other than those that leave what is graded alone); the walk stops at the last
  definition that runs unconditionally (a plain top-level assignment, ``def``, ``class`` or ``import``);
- a function's body reads its globals when it is called, so what a needed function reads is resolved at the
  end of the notebook, where the grader calls it (a constant changed in a later cell is the value it sees);
- where the analysis cannot be sure, it runs more, never less: a star import, ``exec``/``eval``/``globals()``/
  ``vars()``/``locals()``/``setattr`` and calls of functions that use them may bind or change any name, so
  each one runs, wherever it stands ("maybe needed": its error is a note, not a failure); so do calls that set a
  library's global state (``keras.config.set_floatx``, ``tf.random.set_seed``: a name beginning ``set_``,
  ``enable_`` or ``disable_``) before a read of that module, and assignments to a module's attributes
  (``keras.Model.count_params = ...``: a library patched) before a read of any module.

Magics and shell lines define no names (IPython runs them as calls), so they run only when a needed statement
assigns their result (``files = !ls``). Nothing here runs the student's code: it reads source text, and runs
inside the student's jail (the grader never parses a student's code).
"""

from __future__ import annotations

import builtins
from collections import deque
from dataclasses import dataclass, field

from .statements import Cell, Statement, python_of, read_cell, read_cells

__all__ = ["Cell", "Need", "Plan", "Statement", "plan", "python_of", "read_cell"]

# Names IPython's shell puts in a notebook's namespace before any cell runs.
SHELL_NAMES = frozenset({"get_ipython", "exit", "quit", "In", "Out", "_ih", "_oh", "_dh", "_", "__", "___",
                         "display", "__name__", "__doc__", "__builtins__", "__builtin__", "__file__"})
BUILTINS = frozenset(dir(builtins)) | SHELL_NAMES
@dataclass(frozen=True)
class Need:
    """Why a statement runs: the target (an entry function) and the names through which it needs it."""

    target: str
    path: tuple[str, ...]        # names, from the one the target reads to the one this statement sets
    maybe: bool = False          # it may set what is needed (an opaque statement, a library's state)


@dataclass
class Plan:
    """The statements to run, in notebook order, each with why; and the cells not run."""

    cells: list[Cell]
    targets: list[str]
    needs: dict[int, list[Need]]  # id(statement) -> why it runs (first the reason it was first reached)
    unresolved: dict[str, set[str]] = field(default_factory=dict)  # target -> names read and defined nowhere

    def statements(self) -> list[Statement]:
        return [s for c in self.cells for s in c.statements if id(s) in self.needs]

    def needed_by(self, statement: Statement) -> list[Need]:
        return self.needs.get(id(statement), [])

    def code(self) -> list[str]:
        """The code that runs, statement by statement (what a grade is keyed on)."""
        return [s.source for s in self.statements()]

    def skipped_cells(self) -> tuple[list[int], list[int]]:
        """(cells none of whose code runs, cells only part of whose code runs), code cells only."""
        none, part = [], []
        for cell in self.cells:
            ran = [s for s in cell.statements if id(s) in self.needs]
            if not ran and (cell.statements or cell.problem or cell.magic):
                none.append(cell.number)
            elif ran and len(ran) < len(cell.statements):
                part.append(cell.number)
        return none, part

    def summary(self) -> str:
        """One line: which cells were not run, and why."""
        none, part = self.skipped_cells()
        who = _names([f"{t}()" for t in self.targets])
        if not none and not part:
            return f"Every code cell ran: {who} need{'s' if len(self.targets) == 1 else ''} all of them."
        said = []
        if none:
            said.append(f"{_cells(none)} not run")
        if part:
            said.append(f"{_cells(part).lower() if said else _cells(part)} run in part")
        broken = [f"cell {c.number} is not valid Python ({c.problem})" for c in self.cells if c.problem]
        return (f"{' and '.join(said)} when grading: {who} "
                f"{'does' if len(self.targets) == 1 else 'do'} not need the rest (your experiments, training, "
                f"plots, magics and shell lines); the grader trains the model itself"
                + (f"; {'; '.join(broken)}" if broken else "") + ".")


def _names(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _cells(numbers: list[int]) -> str:
    """``[3, 4, 5, 8]`` -> "Cells 3-5 and 8"."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    parts = [part for r in runs for part in ([f"{r[0]}-{r[-1]}"] if len(r) > 2 else map(str, r))]
    return ("Cell " if len(numbers) == 1 else "Cells ") + _names(parts)


# -- the plan ------------------------------------------------------------------------------------------------

def plan(sources: list[tuple[int, str]], targets: list[str], optional: tuple[str, ...] = ()) -> Plan:
    """Which statements of the code cells ``sources`` ((cell number, source), in notebook order) the names in
    ``targets`` need when read after the last cell; ``optional`` targets (an options function) are needed only
    if defined. Every statement is run in notebook order; see the module's docstring for the rules."""
    cells = read_cells(sources)
    flat = [s for c in cells for s in c.statements]
    effects: dict[str, set[str]] = {}  # function name -> every global any of its definitions sets or changes
    opaque_functions: set[str] = set()
    later: dict[str, set[str]] = {}
    for s in flat:
        for name, names in s.effects.items():
            effects.setdefault(name, set()).update(names)
        opaque_functions |= s.calls_opaque
        for name in s.effects:
            later.setdefault(name, set()).update(s.reads_later)
    # a function's effects include those of the functions it calls
    changed = True
    while changed:
        changed = False
        for name, reads in later.items():
            for callee in reads & (set(effects) | opaque_functions):
                grown = effects.get(callee, set()) - effects.setdefault(name, set())
                if grown:
                    effects[name] |= grown
                    changed = True
                if callee in opaque_functions and name not in opaque_functions:
                    opaque_functions.add(name)
                    changed = True
    for s in flat:
        called = s.reads_now & (set(effects) | opaque_functions)
        for name in called:
            s.changes |= effects.get(name, set())
        if called & opaque_functions:
            s.opaque = True

    result = Plan(cells=cells, targets=list(targets), needs={})
    for target in [*targets, *optional]:
        if target in optional and not any(target in s.defines for s in flat):
            continue
        _need(result, flat, target)
    return result


def _need(result: Plan, flat: list[Statement], target: str) -> None:
    """Mark what ``target``, read after the last statement, needs. A statement that may do what cannot be seen
    (exec, globals(), a star import: rebind or change any name, even one set again later) runs in any case; a
    needed function that reads names no one can see (``globals()[name]``, ``eval``) has every statement run."""
    seen: set[tuple[int, bool]] = set()
    walked: set[tuple[str, int, bool]] = set()
    work: deque[tuple[str, int, tuple[str, ...], bool]] = deque([(target, len(flat), (), False)])
    for i, s in enumerate(flat):
        if s.opaque:
            _mark(result, flat, s, i, Need(target, (target,), True), seen, work)
    unresolved = result.unresolved.setdefault(target, set())
    everything = blind = False
    while work:
        name, before, path, maybe = work.popleft()
        if (name, before, maybe) in walked or (name, before, False) in walked:
            continue
        walked.add((name, before, maybe))
        path = path if path[-1:] == (name,) else (*path, name)
        found = False
        for i in range(before - 1, -1, -1):
            s = flat[i]
            if name in s.defines or name in s.changes:
                found = True
                _mark(result, flat, s, i, Need(target, path, maybe), seen, work)
                blind |= name in s.calls_opaque
                if name in s.kills:
                    break
            elif name in s.state:
                _mark(result, flat, s, i, Need(target, path, True), seen, work)
        if not found and name not in BUILTINS:
            unresolved.add(name)
        if blind and not everything and not work:
            everything = True
            for i, s in enumerate(flat):
                _mark(result, flat, s, i, Need(target, (target,), True), seen, work)
    if not unresolved:
        result.unresolved.pop(target)


def _mark(result: Plan, flat: list[Statement], s: Statement, i: int, need: Need, seen: set, work: deque) -> None:
    result.needs.setdefault(id(s), []).append(need)
    if (id(s), need.maybe) in seen or (id(s), False) in seen:
        return
    seen.add((id(s), need.maybe))
    for name in s.reads_now:
        work.append((name, i, need.path, need.maybe))
    for name in s.reads_later:
        work.append((name, len(flat), need.path, need.maybe))
