"""Where the package builds SQL text in Python: the syntax-tree walk shared by the injection check
(tests/test_injection.py: what may be interpolated) and the portability check of embedded SQL
(tests/test_sql_portability.py: each statement rendered and linted like a sql/ model).

A *SQL site* is an expression inside a function of ``attribution/*.py`` whose text looks like SQL:
an f-string, a string constant, a ``+`` / ``%`` of a string constant, or ``"...".format(...)``.
Module-level strings are not sites; the functions that use them are.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

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


# --- rendering a site with representative values ----------------------------------------------

_STATEMENT = re.compile(
    r"^\s*\(?\s*(select|with|insert|create|delete|update|describe|pragma|copy|alter|drop|attach|"
    r"explain|summarize|from|values|set)\b",
    re.IGNORECASE,
)


_FORMAT_FIELD = re.compile(r"(?<!\{)\{\w*\}(?!\})")


class Stand(str):
    """A representative value for a name the renderer cannot evaluate (a parameter, a loop
    variable, a call on a connection): its own name, usable as an identifier in SQL text."""

    def __getattr__(self, attribute: str) -> Stand:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return Stand(f"{self}_{attribute}")

    def __call__(self, *args: object, **kwargs: object) -> Stand:
        return self

    def __getitem__(self, key: object) -> Stand:  # type: ignore[override]
        return self

    def __iter__(self) -> Iterator[Stand]:  # type: ignore[override]
        return iter([self])


def is_statement(sql: str) -> bool:
    """True when the text is a whole statement (not a fragment such as a CTE or a clause)."""
    return bool(_STATEMENT.match(sql))


class Renderer:
    """Evaluates a site's expression in its module with representative values for what is not
    known until run time. Locals bound once by ``name = ...`` take the value of their binding
    (the longest, when several are strings; ``+=`` pieces appended); parameters, loop variables
    and unpacked names are ``Stand`` unless ``representative`` gives them a value."""

    def __init__(self, namespace: dict[str, object], function: FunctionNode) -> None:
        self.namespace = namespace
        self.function = function
        self.bindings = function_bindings(function)
        self.simple: set[str] = set()
        self.appended: dict[str, list[ast.expr]] = {}
        self.unpacked: dict[str, tuple[ast.expr, int]] = {}
        self.assigned_to: dict[int, list[str]] = {}
        for node in ast.walk(function):
            if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
                self.simple.update(t.id for t in node.targets)  # type: ignore[union-attr]
                self.assigned_to[id(node.value)] = [t.id for t in node.targets]  # type: ignore[union-attr]
            elif (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Tuple)
                and all(isinstance(e, ast.Name) for e in node.targets[0].elts)
            ):
                for index, element in enumerate(node.targets[0].elts):
                    self.unpacked[element.id] = (node.value, index)  # type: ignore[attr-defined]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                self.simple.add(node.target.id)
            elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
                self.appended.setdefault(node.target.id, []).append(node.value)
        arguments = function.args
        self.parameters = {
            a.arg
            for a in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
            + [a for a in (arguments.vararg, arguments.kwarg) if a is not None]
        }

    def render(self, node: ast.expr, representative: dict[str, object]) -> str:
        """The site's text; a site assigned to a name gets that name's ``+=`` pieces appended."""
        text = str(self._evaluate(node, representative, 0))
        for name in self.assigned_to.get(id(node), ()):
            for piece in self.appended.get(name, []):
                try:
                    extra = self._evaluate(piece, representative, 1)
                except Exception:  # a piece known only at run time: left out
                    continue
                text += str(extra)
        return text

    def _evaluate(self, node: ast.expr, representative: dict[str, object], depth: int) -> object:
        names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        scope = dict(self.namespace)
        for name in names:
            if name in representative:
                scope[name] = representative[name]
            elif name in self.bindings or name in self.parameters:
                scope[name] = self._value(name, representative, depth)
            elif name not in scope and name not in _BUILTINS:
                scope[name] = Stand(name)
        # the package's own expressions, with stand-in values: nothing here comes from data
        return eval(compile(ast.Expression(body=node), "<site>", "eval"), scope)

    def _value(self, name: str, representative: dict[str, object], depth: int) -> object:
        if depth > 6:
            return Stand(name)
        if name in self.unpacked and name not in self.simple:
            expression, index = self.unpacked[name]
            try:
                return self._evaluate(expression, representative, depth + 1)[index]  # type: ignore[index]
            except Exception:  # a value known only at run time: a stand-in
                return Stand(name)
        if name not in self.simple:
            return Stand(name)
        values = []
        for expression in self.bindings.get(name, []):
            try:
                values.append(self._evaluate(expression, representative, depth + 1))
            except Exception:  # an expression that needs run time: a stand-in
                continue
        texts = [v for v in values if isinstance(v, str)]
        if not values:
            return Stand(name)
        if not texts:
            return values[0]
        value = max(texts, key=len)
        for piece in self.appended.get(name, []):
            try:
                extra = self._evaluate(piece, representative, depth + 1)
            except Exception:
                continue
            if isinstance(extra, str):
                value += extra
        return value


_BUILTINS = frozenset(dir(__import__("builtins")))


@dataclass(frozen=True)
class Rendered:
    """A SQL site rendered with representative values: a whole statement or a fragment."""

    file: str
    function: str
    line: int
    text: str
    pieces: tuple[str, ...]  # the site's own literal text, for finding it inside statements

    @property
    def is_statement(self) -> bool:
        """A whole statement to lint (not a fragment, not a template with format fields)."""
        return is_statement(self.text) and not _FORMAT_FIELD.search(self.text)


def _load(path: Path) -> ModuleType:
    if path.parent == PACKAGE:
        return importlib.import_module(f"attribution.{path.stem}")
    spec = importlib.util.spec_from_file_location(f"_sql_sites_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]  # dataclasses look it up
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def literal_pieces(node: ast.AST) -> tuple[str, ...]:
    """The literal text of a site or a string constant (format fields cut out), stripped."""
    texts = [
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]
    return tuple(
        " ".join(piece.replace("{{", "{").replace("}}", "}").split())
        for text in texts
        for piece in _FORMAT_FIELD.split(text)
        if piece.strip()
    )


def rendered_sites(
    package: Path = PACKAGE, representative: dict[str, object] | None = None
) -> tuple[list[Rendered], list[tuple[str, str, int, str]]]:
    """Render every outermost SQL site of the package's functions; return the renderings and the
    sites that could not be rendered (file, function, line, why)."""
    done: list[Rendered] = []
    failed: list[tuple[str, str, int, str]] = []
    for path in sorted(package.glob("*.py")):
        namespace = vars(_load(path))
        for function in functions_of(ast.parse(path.read_text())):
            renderer = Renderer(namespace, function)
            sites = list(sql_sites(function, path.name)) + list(
                _template_sites(function, path.name, namespace)
            )
            for site in outermost(sites):
                try:
                    text = renderer.render(site.node, representative or {})
                except Exception as error:  # reported by the caller
                    failed.append((path.name, function.name, site.line, repr(error)))
                    continue
                pieces = literal_pieces(site.node)
                done.append(Rendered(path.name, function.name, site.line, text, pieces))
    return done, failed


def _template_sites(
    function: FunctionNode, file: str, namespace: dict[str, object]
) -> Iterator[Site]:
    """``NAME.format(...)`` where NAME is a module-level string that looks like SQL."""
    for node in ast.walk(function):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "format"
            and isinstance(node.func.value, ast.Name)
            and isinstance(namespace.get(node.func.value.id), str)
            and SQL_TEXT.search(namespace[node.func.value.id])  # type: ignore[arg-type]
        ):
            yield Site(file, function, node, (*node.args, *(k.value for k in node.keywords)))


def module_sql_strings(package: Path = PACKAGE) -> list[Rendered]:
    """Module-level strings that look like SQL, as the module holds them (a template keeps its
    format fields: it is linted where ``.format`` fills them)."""
    found = []
    for path in sorted(package.glob("*.py")):
        namespace = vars(_load(path))
        for statement in ast.parse(path.read_text()).body:
            if not isinstance(statement, ast.Assign | ast.AnnAssign) or statement.value is None:
                continue
            names = targets(
                statement.targets[0] if isinstance(statement, ast.Assign) else statement.target
            )
            value = namespace.get(names[0]) if len(names) == 1 else None
            if isinstance(value, str) and _sql_parts(statement.value) is not None:
                pieces = literal_pieces(statement.value)
                found.append(Rendered(path.name, "<module>", statement.lineno, value, pieces))
    return found
