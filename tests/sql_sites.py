"""Where the package builds SQL text in Python: the syntax-tree walk shared by the injection check
(tests/test_injection.py: what may be interpolated) and the portability check of embedded SQL
(tests/test_sql_portability.py: each statement rendered and linted like a sql/ model).

A *SQL site* is an expression inside a function of ``attribution/*.py`` whose text looks like SQL:
an f-string, a string constant, a ``+`` / ``%`` of a string constant, or ``"...".format(...)``.
Module-level strings are not sites; the functions that use them are.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "attribution"

SQL_TEXT = re.compile(
    r"(?i:\bselect\s|\binsert\s+into\b|\bcreate\s+(or\s+replace\s+)?(temp\s+|temporary\s+)?"
    r"(table|view)\b|\bdelete\s+from\b|\bupdate\s+\S+\s+set\b|\bdrop\s+(table|view)\b|"
    r"\balter\s+table\b|\bdescribe\s|\battach\s|\bpragma\s)"
    r"|\b(FROM|WHERE|JOIN|GROUP BY|ORDER BY|COPY|NOT IN|IN|IS NULL|IS NOT NULL|CASE|WHEN|THEN|"
    r"ELSE|END|AND|OR|NOT|CAST|TRY_CAST|OVER|PARTITION BY|DISTINCT|BETWEEN|LIKE|EXISTS|UNION|"
    r"VALUES|SET|AS)\b"
)

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


@dataclass(frozen=True)
class Site:
    """One SQL-looking expression: where it is, the node, and the values it interpolates."""

    file: str
    function: FunctionNode
    node: ast.expr
    parts: tuple[ast.expr, ...]

    @property
    def line(self) -> int:
        return self.node.lineno


def targets(node: ast.AST) -> list[str]:
    """Return the names an assignment target binds."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Tuple | ast.List):
        return [n for elt in node.elts for n in targets(elt)]
    if isinstance(node, ast.Starred):
        return targets(node.value)
    return []


def function_bindings(function: FunctionNode) -> dict[str, list[ast.expr]]:
    """Return, per local name, the expressions it is bound to (a loop variable: its iterable)."""
    bindings: dict[str, list[ast.expr]] = {}
    for node in ast.walk(function):
        if isinstance(node, ast.Assign):
            for t in node.targets:
                for name in targets(t):
                    bindings.setdefault(name, []).append(node.value)
        elif isinstance(node, ast.AnnAssign | ast.AugAssign) and node.value is not None:
            for name in targets(node.target):
                bindings.setdefault(name, []).append(node.value)
        elif isinstance(node, ast.For | ast.comprehension):
            for name in targets(node.target):
                bindings.setdefault(name, []).append(node.iter)
        elif isinstance(node, ast.NamedExpr):
            bindings.setdefault(node.target.id, []).append(node.value)
    return bindings


def package_functions(package: Path = PACKAGE) -> set[str]:
    """Names of the functions defined in the package."""
    return {
        node.name
        for path in package.glob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, FunctionNode)
    }


def functions_of(tree: ast.Module) -> Iterator[FunctionNode]:
    """Every function of a module, nested ones and methods included."""
    for node in ast.walk(tree):
        if isinstance(node, FunctionNode):
            yield node


def _is_sql_string(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and bool(SQL_TEXT.search(node.value))
    )


def _sql_parts(node: ast.AST) -> tuple[ast.expr, ...] | None:
    """The interpolated parts of a SQL-looking node (empty: plain text); None if not SQL."""
    if isinstance(node, ast.JoinedStr):
        text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
        if SQL_TEXT.search(text):
            return tuple(v.value for v in node.values if isinstance(v, ast.FormattedValue))
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mod):
        sides = (node.left, node.right)
        if any(_is_sql_string(s) for s in sides):
            return tuple(s for s in sides if not isinstance(s, ast.Constant | ast.JoinedStr))
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
        and _is_sql_string(node.func.value)
    ):
        return (*node.args, *(k.value for k in node.keywords))
    elif _is_sql_string(node):
        return ()
    return None


def sql_sites(function: FunctionNode, file: str) -> Iterator[Site]:
    """Every SQL-looking expression of one function (docstrings excluded), nested ones too."""
    docstrings = {
        id(stmt.value)
        for node in ast.walk(function)
        if isinstance(node, FunctionNode | ast.ClassDef)
        for stmt in node.body[:1]
        if isinstance(stmt, ast.Expr)
    }
    for node in ast.walk(function):
        if id(node) in docstrings:
            continue
        parts = _sql_parts(node)
        if parts is not None:
            yield Site(file, function, node, parts)  # type: ignore[arg-type]


def outermost(sites: list[Site]) -> list[Site]:
    """The sites not inside another site of the same function (a whole statement, not pieces)."""
    inner = {id(child) for site in sites for child in ast.walk(site.node) if child is not site.node}
    return [site for site in sites if id(site.node) not in inner]
