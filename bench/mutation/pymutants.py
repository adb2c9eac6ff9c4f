"""Mutants of one Python module, made on its syntax tree (never on text, so every mutant parses).

Operators (the small changes a reviewer misses): flipped or loosened comparisons (`<` / `<=`, `==` / `!=`,
`in` / `not in`, `is` / `is not`), `and` / `or`, a dropped operand of `and` / `or`, a dropped `not`,
arithmetic `+` / `-`, `*` / `/`, integers +1 and -1 (off-by-ones), a float limit nudged, `True` / `False`,
`min` / `max`, `break` / `continue`, a dropped `if` branch (`if False`), a deleted call statement or `raise`,
and swapped operands of a 2-tuple comparison. Docstrings, annotations and string constants are left alone:
messages are not behaviour this tool judges.
"""

from __future__ import annotations

import ast
import copy
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# A step from a node to one of its children: (field name, index in a list field or None).
Step = tuple[str, int | None]
Path = tuple[Step, ...]


@dataclass(frozen=True)
class PyMutant:
    line: int
    end_line: int
    operator: str
    before: str
    after: str
    path: Path
    kind: str  # the transform's name, applied by `apply`
    # A mutant outside any function changes a module-level name: the lines that read that name (directly or
    # through other module-level names) are the ones whose tests can see it; `exported` when another module
    # may read it too (then every test is a candidate).
    use_lines: tuple[int, ...] = ()
    exported: bool = False
    module_level: bool = False
    context: str = ""  # the source line it is on (stripped), to tell apart equal changes on other lines


_CMP_SWAP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_BIN_SWAP: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult,
    ast.Mod: ast.FloorDiv,
}


def _children(node: ast.AST) -> Iterator[tuple[Step, ast.AST]]:
    for name, value in ast.iter_fields(node):
        if isinstance(value, ast.AST):
            yield (name, None), value
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, ast.AST):
                    yield (name, i), item


def _get(tree: ast.AST, path: Path) -> ast.AST:
    node = tree
    for name, index in path:
        value = getattr(node, name)
        node = value if index is None else value[index]
    return node


def _is_docstring(parent: ast.AST, step: Step, node: ast.AST) -> bool:
    return (
        isinstance(parent, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and step == ("body", 0)
        and isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


_SKIP_FIELDS = {"annotation", "returns", "decorator_list", "type_comment"}


def _walk(tree: ast.AST) -> Iterator[tuple[Path, ast.AST, ast.AST | None]]:
    """(path, node, parent) for every node worth mutating (no annotations, docstrings, __future__)."""
    stack: list[tuple[Path, ast.AST, ast.AST | None]] = [((), tree, None)]
    while stack:
        path, node, parent = stack.pop()
        yield path, node, parent
        for step, child in reversed(list(_children(node))):
            if step[0] in _SKIP_FIELDS or _is_docstring(node, step, child):
                continue
            if isinstance(child, ast.ImportFrom | ast.Import | ast.JoinedStr):
                continue
            if isinstance(child, ast.AnnAssign):  # mutate the value, never the annotation
                if child.value is not None:
                    stack.append(((*path, step, ("value", None)), child.value, child))
                continue
            stack.append(((*path, step), child, node))


def _empty_fallback(node: ast.BoolOp, value: ast.AST) -> bool:
    """`x or {}` / `x or 0`: a defensive default for missing data; dropping it is not a logic change."""
    if not isinstance(node.op, ast.Or) or value is not node.values[-1]:
        return False
    if isinstance(value, ast.Constant):
        return not value.value
    if isinstance(value, ast.Dict | ast.List | ast.Tuple | ast.Set):
        return not getattr(value, "keys", getattr(value, "elts", None))
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and not value.args
        and (value.func.id in ("dict", "list", "set", "tuple"))
    )


def _text(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 90 else text[:87] + "..."


def _sites(tree: ast.Module) -> Iterator[tuple[Path, ast.AST, str, str]]:
    """(path, node, operator, transform kind) for each mutation."""
    for path, node, parent in _walk(tree):
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in _CMP_SWAP:
                    yield path, node, "comparison", f"cmp:{i}"
            tuples = [node.left, *node.comparators]
            if any(isinstance(t, ast.Tuple) and len(t.elts) == 2 for t in tuples):
                yield path, node, "swap tuple operands", "cmp-tuple-swap"
        elif isinstance(node, ast.BoolOp):
            yield path, node, "and/or", "boolop"
            for i, value in enumerate(node.values):
                if not _empty_fallback(node, value):
                    yield path, node, "drop operand", f"boolop-drop:{i}"
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield path, node, "drop not", "not"
        elif isinstance(node, ast.BinOp | ast.AugAssign) and type(node.op) in _BIN_SWAP:
            yield path, node, "arithmetic", "binop"
        elif isinstance(node, ast.Constant) and not isinstance(parent, ast.JoinedStr):
            if isinstance(node.value, bool):
                yield path, node, "boolean", "bool"
            elif isinstance(node.value, int):
                yield path, node, "off by one", "int+1"
                yield path, node, "off by one", "int-1"
            elif isinstance(node.value, float):
                yield path, node, "number", "float"
        elif (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("min", "max")
        ):
            yield path, node, "min/max", "minmax"
        elif isinstance(node, ast.Break | ast.Continue):
            yield path, node, "break/continue", "loopctl"
        elif isinstance(node, ast.If):
            yield path, node, "drop branch", "if-false"
        elif isinstance(node, ast.Raise) or (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
            yield path, node, "delete statement", "delete"


def _transform(node: ast.AST, kind: str) -> ast.AST:
    """A mutated deep copy of `node`."""
    new = copy.deepcopy(node)
    name, _, arg = kind.partition(":")
    actions: dict[str, Callable[[], ast.AST]] = {
        "cmp": lambda: _set_cmp(new, int(arg)),
        "cmp-tuple-swap": lambda: _swap_tuples(new),
        "boolop": lambda: _swap_boolop(new),
        "boolop-drop": lambda: _drop_operand(new, int(arg)),
        "not": lambda: new.operand,  # type: ignore[attr-defined]
        "binop": lambda: _swap_binop(new),
        "bool": lambda: ast.Constant(not new.value),  # type: ignore[attr-defined]
        "int+1": lambda: ast.Constant(new.value + 1),  # type: ignore[attr-defined]
        "int-1": lambda: ast.Constant(new.value - 1),  # type: ignore[attr-defined]
        "float": lambda: ast.Constant(new.value + 1.0 if new.value == 0 else new.value * 1.5),  # type: ignore[attr-defined]
        "minmax": lambda: _swap_minmax(new),
        "loopctl": lambda: ast.Continue() if isinstance(new, ast.Break) else ast.Break(),
        "if-false": lambda: _if_false(new),
        "delete": lambda: ast.Pass(),
    }
    result = actions[name]()
    return ast.copy_location(result, node)


def _set_cmp(node: ast.Compare, i: int) -> ast.AST:
    node.ops[i] = _CMP_SWAP[type(node.ops[i])]()
    return node


def _swap_tuples(node: ast.Compare) -> ast.AST:
    for t in [node.left, *node.comparators]:
        if isinstance(t, ast.Tuple) and len(t.elts) == 2:
            t.elts.reverse()
            break
    return node


def _swap_boolop(node: ast.BoolOp) -> ast.AST:
    node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    return node


def _drop_operand(node: ast.BoolOp, i: int) -> ast.AST:
    values = [v for j, v in enumerate(node.values) if j != i]
    if len(values) == 1:
        return values[0]
    node.values = values
    return node


def _swap_binop(node: ast.BinOp | ast.AugAssign) -> ast.AST:
    node.op = _BIN_SWAP[type(node.op)]()
    return node


def _swap_minmax(node: ast.Call) -> ast.AST:
    assert isinstance(node.func, ast.Name)
    node.func = ast.Name("max" if node.func.id == "min" else "min", ast.Load())
    return node


def _if_false(node: ast.If) -> ast.AST:
    node.test = ast.Constant(False)
    return node


def _bound_names(stmt: ast.stmt) -> set[str]:
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {stmt.name}
    targets: list[ast.expr] = []
    if isinstance(stmt, ast.Assign):
        targets = list(stmt.targets)
    elif isinstance(stmt, ast.AnnAssign | ast.AugAssign):
        targets = [stmt.target]
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def _module_scope(tree: ast.Module, others: str) -> dict[int, tuple[tuple[int, ...], bool]]:
    """For each top-level statement: (lines reading what it binds, transitively; read by other code?)."""
    loads: dict[str, set[int]] = {}
    top_uses: dict[str, set[int]] = {}  # name -> top-level statements whose own value reads it
    for i, stmt in enumerate(tree.body):
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                loads.setdefault(node.id, set()).add(node.lineno)
                if not isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    top_uses.setdefault(node.id, set()).add(i)
    scope: dict[int, tuple[tuple[int, ...], bool]] = {}
    for i, stmt in enumerate(tree.body):
        names, seen, lines = _bound_names(stmt), {i}, set()
        frontier = set(names)
        while frontier:
            name = frontier.pop()
            lines |= loads.get(name, set())
            for j in top_uses.get(name, set()) - seen:
                seen.add(j)
                frontier |= _bound_names(tree.body[j])
                names |= _bound_names(tree.body[j])
        exported = any(re.search(rf"\b{re.escape(n)}\b", others) for n in names)
        scope[i] = (tuple(sorted(lines)), exported)
    return scope


def _in_function(tree: ast.Module, path: Path) -> bool:
    node: ast.AST = tree
    for step in path:
        node = _get(node, (step,))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            return True
    return False


def _defaults_of(tree: ast.Module, path: Path) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The function whose signature (a default value) the path is in, if any. A default is evaluated once,
    when the `def` runs at import, but read by every call that leaves the argument out: its tests are those
    that run the function's body, not those that ran the `def` line at import."""
    node: ast.AST = tree
    for step in path:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and step == ("args", None):
            return node
        node = _get(node, (step,))
    return None


def mutants(source: str, others: str = "") -> list[PyMutant]:
    """Every mutant of `source`; `others` is the text of the code that may import from it."""
    tree = ast.parse(source)
    lines = source.splitlines()
    scope = _module_scope(tree, others)
    found = []
    for path, node, operator, kind in _sites(tree):
        new = _transform(node, kind)
        before, after = _text(node), _text(new)
        if isinstance(node, ast.If):
            before, after = f"if {_text(node.test)}: ...", "if False: ..."
        if before == after:
            continue
        use_lines, exported, module_level = (), False, not _in_function(tree, path)
        if module_level:
            use_lines, exported = scope[int(path[0][1] or 0)]
        elif (function := _defaults_of(tree, path)) is not None:  # read where the body runs
            body = range(function.body[0].lineno, _end(function) + 1)
            use_lines, module_level = tuple(body), True
        line = getattr(node, "lineno", 0)
        found.append(
            PyMutant(
                line,
                _end(node),
                operator,
                before,
                after,
                path,
                kind,
                use_lines,
                exported,
                module_level,
                lines[line - 1].strip()[:120] if 0 < line <= len(lines) else "",
            )
        )
    return found


def _end(node: ast.AST) -> int:
    if isinstance(node, ast.If):  # the test, not the whole branch
        return int(getattr(node.test, "end_lineno", node.lineno))
    return int(getattr(node, "end_lineno", None) or getattr(node, "lineno", 0))


def apply(source: str, mutant: PyMutant) -> str:
    """The module's source with `mutant` applied (re-printed from the tree: comments are dropped)."""
    tree = ast.parse(source)
    *parent_path, (name, index) = mutant.path
    parent = _get(tree, tuple(parent_path))
    node = _get(parent, ((name, index),))
    new = _transform(node, mutant.kind)
    if index is None:
        setattr(parent, name, new)
    else:
        getattr(parent, name)[index] = new
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"
