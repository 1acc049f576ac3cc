"""A notebook's cells read as IPython reads them, split into top-level statements, each with the names it
reads (when it runs, or later when a function it defines is called), sets, changes in place, and whether it
may do what no one can see: what :mod:`.slicing` plans from. Reads source text only; runs nothing.
"""

from __future__ import annotations

import ast
import symtable
from dataclasses import dataclass, field

# Calls that may bind any name in the namespace: where the analysis cannot see what they define.
OPAQUE_CALLS = frozenset({"exec", "eval", "globals", "vars", "locals", "setattr", "delattr", "__import__",
                          "execfile", "runfile"})
# Methods that leave alone what is graded (a model's layers and compile settings): they read, return a new
# value, or change only weights, which the grader re-initialises from its own seed. Any other method called on a
# name counts as changing it.
KEEPS = frozenset({
    # Keras models and layers: training, evaluation, weights, saving, inspection
    "fit", "evaluate", "predict", "predict_on_batch", "train_on_batch", "test_on_batch", "fit_generator",
    "evaluate_generator", "predict_generator", "summary", "save", "save_weights", "load_weights", "set_weights",
    "get_weights", "export", "count_params", "get_config", "to_json", "get_layer", "get_compile_config",
    "get_build_config", "plot_model", "reset_states", "reset_metrics",
    # numpy arrays and tensors: values computed from them
    "reshape", "astype", "copy", "tolist", "numpy", "item", "max", "min", "mean", "sum", "std", "var", "argmax",
    "argmin", "any", "all", "flatten", "ravel", "transpose", "squeeze", "round", "clip", "nonzero", "cumsum",
    "prod", "dot", "tobytes",
    # containers and strings that are read
    "keys", "values", "items", "get", "count", "index", "format", "join", "split", "startswith", "endswith",
    "lower", "upper", "strip", "replace", "encode", "decode", "head", "tail", "describe", "info",
    # plots
    "plot", "show", "imshow", "legend", "title", "xlabel", "ylabel", "set_title", "set_xlabel", "set_ylabel",
    "savefig", "subplots", "figure", "hist", "bar", "scatter", "grid", "axis", "tight_layout",
})
COMPREHENSIONS = frozenset({"listcomp", "setcomp", "dictcomp", "genexpr"})
LIBRARY_STATE = ("set_", "enable_", "disable_")  # a module's call that changes the library's global state


@dataclass
class Statement:
    """One top-level statement of a cell, as the analysis sees it."""

    cell: int                    # the cell's number in the notebook (1-based, every cell counted)
    node: ast.stmt
    source: str                  # its code, as it runs (IPython syntax already turned into Python)
    defines: set[str] = field(default_factory=set)
    kills: set[str] = field(default_factory=set)       # names it always rebinds (earlier values are dead)
    changes: set[str] = field(default_factory=set)     # names whose value it may change in place
    state: set[str] = field(default_factory=set)       # modules whose global state it may set (maybe needed)
    reads_now: set[str] = field(default_factory=set)   # names read when it runs
    reads_later: set[str] = field(default_factory=set)  # globals the functions it defines read when called
    effects: dict[str, set[str]] = field(default_factory=dict)  # function name -> globals it sets or changes
    opaque: bool = False         # may define names that cannot be seen (star import, exec, globals(), ...)
    calls_opaque: set[str] = field(default_factory=set)  # functions it defines that use exec/globals()/...


@dataclass
class Cell:
    number: int
    statements: list[Statement]
    problem: str | None = None   # why none of it can run (not valid Python)
    magic: str | None = None     # the cell magic whose body is its code (``time`` for ``%%time``)
    python: str = ""             # its code as Python (what the statements' line numbers refer to)


def python_of(source: str) -> tuple[str, str | None]:
    """A cell's source as Python, the way IPython turns it into Python (magics and shell lines become calls of
    ``get_ipython()``); for a cell magic whose body is Python (``%%time``, ``%%capture``), that body and the
    magic's name. Raises SyntaxError where IPython could not make Python of it."""
    from IPython.core.inputtransformer2 import TransformerManager

    manager = TransformerManager()
    python = manager.transform_cell(source)
    tree = ast.parse(python)
    if len(tree.body) == 1 and (magic := _cell_magic(tree.body[0])) is not None:
        name, body = magic
        try:
            inner = manager.transform_cell(body)
            ast.parse(inner)
        except (SyntaxError, ValueError):
            raise SyntaxError(f"the body of the cell magic %%{name} is not Python") from None
        return inner, name
    return python, None


def _cell_magic(node: ast.stmt) -> tuple[str, str] | None:
    """``get_ipython().run_cell_magic('time', '', body)`` -> ("time", body)."""
    if not (isinstance(node, ast.Expr) and isinstance(call := node.value, ast.Call)
            and isinstance(call.func, ast.Attribute) and call.func.attr == "run_cell_magic"
            and _is_shell(call.func.value) and len(call.args) == 3
            and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in call.args)):
        return None
    return call.args[0].value, call.args[2].value


def _is_shell(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "get_ipython"


def read_cell(number: int, source: str, modules: set[str] | None = None) -> Cell:
    """One cell, split into statements. ``modules``: the names the notebook binds by importing (a call on a
    module does not change the module); by default, those this cell imports."""
    try:
        python, magic = python_of(source)
        tree = ast.parse(python)
    except Exception as exc:  # noqa: BLE001 - whatever IPython or the parser make of it, the cell is not code
        return Cell(number, [], problem=_syntax(exc))
    modules = _module_names(tree) if modules is None else modules
    lines = python.splitlines(keepends=True)
    statements = []
    for node in tree.body:
        text = "".join(lines[node.lineno - 1 - len(getattr(node, "decorator_list", [])):node.end_lineno])
        statements.append(_statement(number, node, text, modules))
    return Cell(number, statements, magic=magic, python=python)


def read_cells(sources: list[tuple[int, str]]) -> list[Cell]:
    """The code cells ``sources`` ((cell number, source), in notebook order), each split into statements."""
    modules = _imports(sources)
    return [read_cell(number, source, modules) for number, source in sources]


def _imports(sources: list[tuple[int, str]]) -> set[str]:
    """The names every cell of the notebook binds by importing."""
    names: set[str] = set()
    for _, source in sources:
        try:
            names |= _module_names(ast.parse(python_of(source)[0]))
        except Exception:  # noqa: BLE001 - read_cell says why
            continue
    return names


def _syntax(exc: Exception) -> str:
    if isinstance(exc, SyntaxError):
        where = f" (line {exc.lineno})" if exc.lineno else ""
        return f"SyntaxError: {exc.msg}{where}"
    return f"{type(exc).__name__}: {exc}"


def _root(node: ast.expr) -> str | None:
    """The name an attribute or subscript chain starts from: ``a.b[0].c`` -> "a"."""
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _target_names(target: ast.expr, names: set[str], changed: set[str]) -> None:
    if isinstance(target, ast.Name):
        names.add(target.id)
    elif isinstance(target, (ast.Tuple, ast.List)):
        for item in target.elts:
            _target_names(item, names, changed)
    elif isinstance(target, ast.Starred):
        _target_names(target.value, names, changed)
    elif (root := _root(target)) is not None:  # x.attr = ..., x[0] = ...
        changed.add(root)


class _Effects(ast.NodeVisitor):
    """What a piece of code does to names, outside the bodies of the functions it defines: the names it
    changes in place, the modules whose state it sets, and whether it may bind names no one can see."""

    def __init__(self, modules: set[str]):
        self.modules = modules
        self.changes: set[str] = set()
        self.state: set[str] = set()
        self.opaque = False
        self.calls: set[str] = set()  # plain names called (functions whose effects apply)

    def visit_FunctionDef(self, node):  # the body runs later; decorators, defaults and annotations run now
        for part in [*node.decorator_list, *node.args.defaults, *node.args.kw_defaults]:
            if part is not None:
                self.visit(part)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node):
        for part in [*node.args.defaults, *node.args.kw_defaults]:
            if part is not None:
                self.visit(part)

    def visit_ImportFrom(self, node):
        if any(alias.name == "*" for alias in node.names):
            self.opaque = True

    def visit_Assign(self, node):
        for target in node.targets:
            _target_names(target, set(), self.changes)
        self.generic_visit(node)

    def visit_AugAssign(self, node):
        _target_names(node.target, set(), self.changes)
        self.generic_visit(node)

    def visit_AnnAssign(self, node):
        _target_names(node.target, set(), self.changes)
        self.generic_visit(node)

    def visit_Delete(self, node):
        for target in node.targets:
            _target_names(target, set(), self.changes)
        self.generic_visit(node)

    def visit_Call(self, node):
        func = node.func
        if isinstance(func, ast.Name):
            self.calls.add(func.id)
            if func.id in OPAQUE_CALLS:
                self.opaque = True
        elif isinstance(func, ast.Attribute):
            chain = func.value
            while isinstance(chain, ast.Attribute):
                chain = chain.value
            if isinstance(chain, ast.Name):  # name.a.b.method(...)
                if chain.id in self.modules:
                    if func.attr.startswith(LIBRARY_STATE) or func.attr == "clear_session":
                        self.state.add(chain.id)
                elif func.attr not in KEEPS:
                    self.changes.add(chain.id)
        self.generic_visit(node)


def _module_names(tree: ast.AST) -> set[str]:
    """Names bound by imports (modules, and what is imported from them)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name != "*":
                    names.add(alias.asname or alias.name.split(".")[0])
    return names


def _statement(cell: int, node: ast.stmt, source: str, modules: set[str]) -> Statement:
    statement = Statement(cell=cell, node=node, source=source)
    module = ast.Module(body=[node], type_ignores=[])
    try:
        table = symtable.symtable(ast.unparse(module), f"<cell {cell}>", "exec")
    except (SyntaxError, ValueError, RecursionError):  # symtable's own checks (a nonlocal at top level): unknown
        statement.opaque = True
        return statement
    for symbol in table.get_symbols():
        name = symbol.get_name()
        if symbol.is_assigned() or symbol.is_imported():
            statement.defines.add(name)
        if symbol.is_referenced():
            statement.reads_now.add(name)
    for child in table.get_children():
        _scope(child, statement, now=_runs_now(child))
    effects = _Effects(modules)
    effects.visit(node)
    patched = effects.changes & modules  # `keras.Model.fit = ...`, `plt.rcParams[...] = ...`: a library's state,
    if patched:  # reached through any of the notebook's modules (`import keras as k` is keras too)
        effects.state |= modules
    statement.changes |= effects.changes - patched
    statement.state |= effects.state
    statement.opaque = effects.opaque
    # the functions it defines: what each sets or changes among the globals when it is called
    for inner in ast.walk(node):
        if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef)) and inner.name in statement.defines:
            sets, changes, opaque = _function_effects(inner, modules)
            statement.effects[inner.name] = sets | changes
            if opaque:
                statement.calls_opaque.add(inner.name)
    if isinstance(node, (ast.Assign, ast.AnnAssign)) and (not isinstance(node, ast.AnnAssign) or node.value):
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target]):
            _target_names(target, statement.kills, set())
    elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        statement.kills.add(node.name)
    elif isinstance(node, (ast.Import, ast.ImportFrom)) and not statement.opaque:
        statement.kills |= statement.defines
    statement.changes -= statement.kills
    return statement


def _scope(table: symtable.SymbolTable, statement: Statement, *, now: bool) -> None:
    """The globals a nested scope reads: now (a comprehension, a class body) or when called (a function)."""
    function = table.get_type() == "function" and table.get_name() not in COMPREHENSIONS
    for symbol in table.get_symbols():
        name = symbol.get_name()
        if symbol.is_global() and symbol.is_referenced():
            (statement.reads_now if now else statement.reads_later).add(name)
        if symbol.is_declared_global() and symbol.is_assigned() and not function:
            statement.defines.add(name)
    for child in table.get_children():  # a comprehension inside a function runs when the function runs
        _scope(child, statement, now=now and _runs_now(child))


def _runs_now(table: symtable.SymbolTable) -> bool:
    """A class body or a comprehension runs where it stands; a function's or a lambda's body when called."""
    return table.get_type() != "function" or table.get_name() in COMPREHENSIONS


def _function_effects(node: ast.FunctionDef | ast.AsyncFunctionDef,
                      modules: set[str]) -> tuple[set[str], set[str], bool]:
    """(globals it assigns through ``global``, globals it changes in place, whether it uses exec/globals()...)."""
    declared = {name for inner in ast.walk(node) if isinstance(inner, ast.Global) for name in inner.names}
    assigned: set[str] = set()
    local: set[str] = {a.arg for a in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs,
                                       *([node.args.vararg] if node.args.vararg else []),
                                       *([node.args.kwarg] if node.args.kwarg else [])]}
    for inner in ast.walk(node):
        if isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Store):
            (assigned if inner.id in declared else local).add(inner.id)
    effects = _Effects(modules)
    for statement in node.body:
        effects.visit(statement)
    changed = {name for name in effects.changes if name not in local or name in declared}
    return assigned, changed, effects.opaque
