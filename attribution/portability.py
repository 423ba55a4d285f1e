"""Check that the ``sql/`` models mean the same on DuckDB and Spark, and carry them to Spark SQL.

A model is written once, in DuckDB SQL. SQLGlot transpiles it to Spark SQL, but passes through,
without error, constructs that Spark rejects (ASOF JOIN, ``epoch_us``, HUGEINT ...) and constructs
that run on both engines with different answers (``date_diff('hour', ...)`` on timestamps,
division by ``3600.0``, implicit NULL order ...). The lint parses a model with SQLGlot and refuses
those on the syntax tree: no JVM, no regex. ``docs/spark.md`` ("Portability rules") lists every
rule with the portable way to write it.

Public surface:

* ``lint_sql(sql, name)``: the findings of one model (empty = portable);
* ``lint_models(folder)``: the findings of every ``*.sql`` file under a folder (``sql/``);
* ``to_spark_sql(sql)``: the model as Spark SQL; DuckDB's ``$name`` parameters become Spark's
  named parameter markers ``:name`` (bind them with ``spark.sql(text, args={...})``);
* ``spark_parameter_names(sql)``: the parameter names a model binds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.parsers.duckdb import DuckDBParser

__all__ = [
    "RULES",
    "Finding",
    "NotPortableError",
    "lint_models",
    "lint_sql",
    "spark_parameter_names",
    "to_spark_sql",
]

# rule id -> what is refused and the portable way (the message of every finding of that rule)
RULES: dict[str, str] = {
    "asof-join": "ASOF JOIN does not exist in Spark: join a dense calendar table or rank candidates",
    "epoch": "epoch()/epoch_ms/epoch_us/epoch_ns: Spark's UNIX_TIMESTAMP drops fractions or has "
    "no equivalent; use date_diff('microsecond', a, b)",
    "to-days": "to_days() has no Spark equivalent: use an INTERVAL literal",
    "hugeint": "HUGEINT/INT128 has no Spark type: cast to BIGINT or DECIMAL(38, 0)",
    "star-modifier": "SELECT * EXCLUDE/REPLACE/RENAME: list the columns",
    "date-diff-unit": "date_diff with a unit other than 'microsecond' counts unit boundaries on "
    "DuckDB and whole elapsed units on Spark: use date_diff('microsecond', a, b) / 3.6e9 for "
    "hours; 'day' only on values cast to DATE (cast(x as date))",
    "decimal-literal-division": "division by a decimal literal (3600.0) stays DECIMAL on Spark "
    "and rounds to 6 digits: write a double literal (3600e0)",
    "division-not-double": "a division whose operands are not visibly DOUBLE: on Spark DECIMAL / "
    "x is DECIMAL rounded to 6 digits (DuckDB: DOUBLE); cast one side to DOUBLE or use a double "
    "literal (1e0)",
    "unguarded-division": "x / 0 is inf or NULL on DuckDB and an error on Spark: wrap the "
    "denominator in NULLIF(..., 0) (or divide by a nonzero literal)",
    "integer-division": "// (integer division) rounds differently: use floor(cast(a as double) "
    "/ b) or an explicit CASE",
    "implicit-null-order": "ORDER BY without NULLS FIRST/LAST: the engines put NULLs at "
    "different ends; write NULLS FIRST or NULLS LAST on every key",
    "window-without-order": "an order-dependent window function (row_number, rank, lag, "
    "first_value ...) needs an ORDER BY with a full tie-break",
    "approximate-aggregate": "percentiles, quantiles, median and approx_* are exact on one "
    "engine and approximate (or absent) on the other: compute them in Python",
    "ordered-aggregate": "an aggregate with its own ORDER BY (list(x ORDER BY y)) loses the "
    "order on Spark (collect_list): aggregate structs and list_sort them",
    "list-aggregate-nulls": "list()/array_agg keeps NULLs on DuckDB; Spark's collect_list drops "
    "them: aggregate a struct literal (never NULL) or filter NULLs out",
    "list-sort-order": "list_sort(l, 'DESC', 'NULLS FIRST') becomes Spark's sort_array(l, false), "
    "which puts NULLs last: sort ascending or filter NULLs out",
    "list-length": "len()/length() of a list becomes Spark's string LENGTH: use array_length()",
    "list-slice-syntax": "list[a:b] slices (and array_slice with a step or no end) do not "
    "transpile: use array_slice(list, first, last)",
    "lambda-index": "a list lambda with an index parameter: DuckDB counts from 1, Spark from 0",
    "list-reduce": "list_reduce needs its initial value (third argument): without it an empty "
    "list is an error on DuckDB and the Spark form needs one",
    "multiple-unnest": "several unnest() in one SELECT are zipped on DuckDB and crossed on "
    "Spark: unnest one list (e.g. of positions) and index the others",
    "any-value": "any_value picks a different row on Spark (non-deterministic): use min or max",
    "date-trunc-uncast": "date_trunc returns TIMESTAMP on both engines only by accident of "
    "version: cast it (cast(date_trunc('month', d) as date))",
    "qualify": "QUALIFY: filter a ranked CTE in the next CTE instead",
    "parse-error": "SQLGlot cannot parse the model as DuckDB SQL, so it cannot carry it to Spark",
    "unknown-function": "SQLGlot does not know this function: it is passed to Spark unchanged "
    "and Spark may lack it or mean something else",
}

# functions SQLGlot does not model but that to_spark_sql rewrites itself
_REWRITTEN_FUNCTIONS = frozenset({"list_reduce"})

_ORDER_DEPENDENT_WINDOWS = (
    exp.RowNumber,
    exp.Rank,
    exp.DenseRank,
    exp.PercentRank,
    exp.CumeDist,
    exp.Ntile,
    exp.Lag,
    exp.Lead,
    exp.FirstValue,
    exp.LastValue,
    exp.NthValue,
)
_APPROXIMATE = tuple(
    getattr(exp, name)
    for name in (
        "PercentileCont",
        "PercentileDisc",
        "Quantile",
        "ApproxQuantile",
        "ApproxQuantiles",
        "Median",
        "ApproxDistinct",
        "ApproxTopK",
        "ApproxPercentileEstimate",
    )
    if hasattr(exp, name)
)
_ARRAY_PRODUCERS = tuple(
    getattr(exp, name)
    for name in (
        "Array",
        "ArrayAgg",
        "ArrayFilter",
        "ArraySort",
        "ArraySlice",
        "ArrayConcat",
        "Transform",
        "GenerateSeries",
        "ArrayDistinct",
        "Split",
    )
    if hasattr(exp, name)
)
_DOUBLE_TYPES = frozenset({exp.DataType.Type.DOUBLE, exp.DataType.Type.FLOAT})
_DOUBLE_FUNCTIONS = (exp.Exp, exp.Ln, exp.Sqrt, exp.Pow, exp.Div)


@dataclass(frozen=True)
class Finding:
    """One non-portable construct: which model, which rule, why, and where."""

    model: str
    rule: str
    message: str
    fragment: str
    line: int | None

    def __str__(self) -> str:
        where = f"{self.model}:{self.line}" if self.line else self.model
        return f"{where}: [{self.rule}] {self.message}\n    {self.fragment}"


class NotPortableError(ValueError):
    """A model failed the portability lint; ``findings`` says where and why."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings
        super().__init__("\n".join(str(f) for f in findings))


class _LintParser(DuckDBParser):
    """DuckDB's parser, remembering whether an ORDER BY key spelled NULLS FIRST/LAST.

    SQLGlot fills in the dialect's default null order, so the tree alone cannot tell
    ``ORDER BY x`` from ``ORDER BY x NULLS LAST``; the tokens just consumed can.
    """

    def _parse_ordered(self, parse_method=None):  # type: ignore[no-untyped-def]
        ordered = super()._parse_ordered(parse_method)
        if ordered is not None:
            consumed = self._tokens[max(self._index - 2, 0) : self._index]
            ordered.meta["explicit_nulls"] = (
                len(consumed) == 2
                and consumed[0].text.upper() == "NULLS"
                and consumed[1].text.upper() in ("FIRST", "LAST")
            )
        return ordered


class _LintDuckDB(DuckDB):
    """DuckDB as written: list indexes kept 1-based in the tree (SQLGlot shifts them to 0-based
    only when it can infer an integer index, so ``l[i]`` and ``l[n - 1]`` would transpile
    differently); ``to_spark_sql`` turns every index into Spark's 1-based ``element_at``."""

    INDEX_OFFSET = 0
    Parser = _LintParser


def _parse(sql: str) -> exp.Expr:
    return sqlglot.parse_one(sql, dialect=_LintDuckDB)


def lint_sql(sql: str, name: str = "<sql>") -> list[Finding]:
    """Return every non-portable construct of one DuckDB model (empty: portable)."""
    try:
        tree = _parse(sql)
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError) as error:
        return [_parse_failure(error, name)]
    return [
        Finding(
            model=name,
            rule=rule,
            message=RULES[rule],
            fragment=_fragment(node),
            line=_line_of(node, sql),
        )
        for rule, node in _violations(tree)
    ]


def lint_models(folder: Path | str) -> list[Finding]:
    """Return the findings of every ``*.sql`` file under ``folder``, named ``layer/stem``."""
    root = Path(folder)
    findings: list[Finding] = []
    for path in sorted(root.rglob("*.sql")):
        name = path.relative_to(root).with_suffix("").as_posix()
        findings.extend(lint_sql(path.read_text(encoding="utf-8"), name))
    return findings


def spark_parameter_names(sql: str) -> list[str]:
    """Return the sorted names of the ``$name`` parameters the model binds."""
    return sorted({node.name for node in _parse(sql).find_all(exp.Placeholder) if node.name})


def to_spark_sql(sql: str, name: str = "<sql>", *, check: bool = True) -> str:
    """Return the DuckDB model as one Spark SQL statement (comments dropped).

    ``$name`` parameters become named markers ``:name``: run it with
    ``spark.sql(text, args={name: value})``. ``list_reduce(l, f, init)`` becomes Spark's
    ``aggregate(l, init, f)``. With ``check`` (the default) a model that fails the lint raises
    ``NotPortableError`` instead of being transpiled into something that differs.
    """
    if check:
        findings = lint_sql(sql, name)
        if findings:
            raise NotPortableError(findings)
    tree = _parse(sql)
    # children before parents (reversed breadth-first order), so nested rewrites compose
    for node in reversed(list(tree.walk())):
        rewritten = _rewrite_for_spark(node)
        if rewritten is not node:
            if node is tree:
                tree = rewritten
            else:
                node.replace(rewritten)
    return tree.sql(dialect="spark", comments=False)


def _rewrite_for_spark(node: exp.Expr) -> exp.Expr:
    """Spell, in Spark's own functions, what SQLGlot does not carry over exactly."""
    if isinstance(node, exp.Anonymous) and node.name.lower() == "list_reduce":
        # list_reduce(list, lambda, initial) -> aggregate(list, initial, lambda)
        items, merge, initial = node.expressions
        return exp.Anonymous(this="AGGREGATE", expressions=[items, initial, merge])
    if isinstance(node, exp.Bracket) and _is_list_index(node):
        # list[i] (1-based on DuckDB) -> element_at(list, i) (1-based on Spark)
        return exp.Anonymous(this="ELEMENT_AT", expressions=[node.this, node.expressions[0]])
    if isinstance(node, exp.ArraySlice):
        # array_slice(list, first, last) (both inclusive) -> slice(list, first, length)
        first, last = node.args["start"], node.args["end"]
        length = exp.Sub(this=exp.paren(last.copy()), expression=exp.paren(first.copy())) + 1
        return exp.Anonymous(this="SLICE", expressions=[node.this, first, length])
    return node


def _is_list_index(node: exp.Bracket) -> bool:
    """True for ``list[i]``; False for ``struct['field']`` / ``map['key']`` and slices."""
    [index] = node.expressions if len(node.expressions) == 1 else [None]
    return (
        index is not None
        and not isinstance(index, exp.Slice)
        and not (isinstance(index, exp.Literal) and index.is_string)
    )


# --- the rules ----------------------------------------------------------------------------


def _violations(tree: exp.Expr) -> Iterator[tuple[str, exp.Expr]]:
    list_aliases = _list_aliases(tree)
    for node in tree.walk():
        yield from _node_violations(node, list_aliases)


def _node_violations(node: exp.Expr, list_aliases: set[str]) -> Iterator[tuple[str, exp.Expr]]:
    if isinstance(node, exp.Join) and "ASOF" in (node.text("method") or "").upper():
        yield "asof-join", node
    elif isinstance(node, (exp.TimeToUnix, exp.UnixToTime)):
        yield "epoch", node
    elif isinstance(node, exp.ToDays):
        yield "to-days", node
    elif isinstance(node, exp.DataType) and node.this in (
        exp.DataType.Type.INT128,
        exp.DataType.Type.UINT128,
    ):
        yield "hugeint", node
    elif isinstance(node, exp.Star) and any(
        node.args.get(key) for key in ("except_", "except", "replace", "rename")
    ):
        yield "star-modifier", node
    elif isinstance(node, exp.DateDiff):
        yield from _date_diff_violations(node)
    elif isinstance(node, exp.Div):
        yield from _division_violations(node)
    elif isinstance(node, exp.IntDiv):
        yield "integer-division", node
    elif isinstance(node, exp.Ordered) and not node.meta.get("explicit_nulls"):
        yield "implicit-null-order", node
    elif isinstance(node, exp.Window):
        if isinstance(node.this, _ORDER_DEPENDENT_WINDOWS) and not _window_order(node):
            yield "window-without-order", node
    elif isinstance(node, _APPROXIMATE) or (
        isinstance(node, exp.Anonymous) and node.name.lower().startswith("approx")
    ):
        yield "approximate-aggregate", node
    elif isinstance(node, exp.ArrayAgg):
        yield from _list_aggregate_violations(node)
    elif isinstance(node, exp.ArraySort) and _list_sort_order(node) == ("DESC", "NULLS FIRST"):
        yield "list-sort-order", node
    elif isinstance(node, exp.Length) and _is_list(node.this, list_aliases):
        yield "list-length", node
    elif _is_untranspilable_slice(node):
        yield "list-slice-syntax", node
    elif isinstance(node, exp.Lambda) and len(node.expressions) > 1:
        if not _is_list_reduce_argument(node):
            yield "lambda-index", node
    elif isinstance(node, exp.Select):
        if sum(_is_unnest(e) for e in node.expressions) > 1:
            yield "multiple-unnest", node
        if node.args.get("qualify"):
            yield "qualify", node
    elif isinstance(node, exp.AnyValue):
        yield "any-value", node
    elif isinstance(node, (exp.DateTrunc, exp.TimestampTrunc)):
        if not (isinstance(node.parent, exp.Cast) and node.parent.to.this in _DATE_OR_TIME):
            yield "date-trunc-uncast", node
    elif isinstance(node, exp.Anonymous):
        fn = node.name.lower()
        if fn == "list_reduce":
            if len(node.expressions) != 3:
                yield "list-reduce", node
        elif fn not in _REWRITTEN_FUNCTIONS:
            yield "unknown-function", node
    if isinstance(node, (exp.Anonymous,)) and node.name.lower() in ("epoch_us", "epoch_ns"):
        yield "epoch", node


_DATE_OR_TIME = frozenset(
    {exp.DataType.Type.DATE, exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPNTZ}
)


def _window_order(window: exp.Window) -> exp.Expr | None:
    """The window's ORDER BY, or that of the named window (WINDOW w AS (...)) it refers to."""
    if window.args.get("order") or window.args.get("alias") is None:
        return window.args.get("order")
    select = window.find_ancestor(exp.Select)
    name = window.args["alias"].name
    for named in (select.args.get("windows") or []) if select else []:
        if named.this.name == name:
            return named.args.get("order")
    return None


def _date_diff_violations(node: exp.DateDiff) -> Iterator[tuple[str, exp.Expr]]:
    unit = (node.text("unit") or "DAY").upper()
    if unit == "MICROSECOND":
        return
    if unit == "DAY" and all(_is_date_cast(e) for e in (node.this, node.expression)):
        return
    yield "date-diff-unit", node


def _is_date_cast(node: exp.Expr | None) -> bool:
    return isinstance(node, exp.Cast) and node.to.this == exp.DataType.Type.DATE


def _division_violations(node: exp.Div) -> Iterator[tuple[str, exp.Expr]]:
    numerator, denominator = node.this, node.expression
    if _is_decimal_literal(_unwrap(numerator)) or _is_decimal_literal(_unwrap(denominator)):
        yield "decimal-literal-division", node
    elif not (_is_double(numerator) or _is_double(denominator)):
        yield "division-not-double", node
    if not _is_guarded(denominator):
        yield "unguarded-division", node


def _unwrap(node: exp.Expr) -> exp.Expr:
    while isinstance(node, (exp.Paren, exp.Neg)):
        node = node.this
    return node


def _is_decimal_literal(node: exp.Expr) -> bool:
    return (
        isinstance(node, exp.Literal)
        and not node.is_string
        and "." in node.this
        and "e" not in node.this.lower()
    )


def _is_double(node: exp.Expr | None) -> bool:
    """True when the expression is visibly DOUBLE on both engines (not from a column's type)."""
    node = _unwrap(node) if node is not None else None
    if isinstance(node, exp.Literal):
        return not node.is_string and "e" in node.this.lower()
    if isinstance(node, (exp.Cast, exp.TryCast)):
        return node.to.this in _DOUBLE_TYPES
    if isinstance(node, _DOUBLE_FUNCTIONS):
        return True
    if isinstance(node, (exp.Add, exp.Sub, exp.Mul)):
        return _is_double(node.this) or _is_double(node.expression)
    if isinstance(node, (exp.Nullif, exp.Coalesce)):
        return _is_double(node.this)
    return False


def _is_guarded(denominator: exp.Expr) -> bool:
    node = _unwrap(denominator)
    if isinstance(node, exp.Nullif):
        return _is_zero_literal(node.expression)
    if isinstance(node, exp.Literal) and not node.is_string:
        return float(node.this) != 0
    return False


def _is_zero_literal(node: exp.Expr | None) -> bool:
    node = _unwrap(node) if node is not None else None
    if isinstance(node, exp.Cast):
        node = node.this
    return isinstance(node, exp.Literal) and not node.is_string and float(node.this) == 0


def _list_aggregate_violations(node: exp.ArrayAgg) -> Iterator[tuple[str, exp.Expr]]:
    argument = node.this
    if isinstance(argument, exp.Order):
        yield "ordered-aggregate", node
        return
    filtered = isinstance(node.parent, exp.Filter)
    if not (isinstance(argument, exp.Struct) or filtered):
        yield "list-aggregate-nulls", node


def _list_sort_order(node: exp.ArraySort) -> tuple[str, str]:
    asc, nulls_first = node.args.get("asc"), node.args.get("nulls_first")
    direction = "DESC" if isinstance(asc, exp.Boolean) and not asc.this else "ASC"
    return direction, "NULLS FIRST" if isinstance(
        nulls_first, exp.Boolean
    ) and nulls_first.this else "NULLS LAST"


def _is_untranspilable_slice(node: exp.Expr) -> bool:
    if isinstance(node, exp.Bracket):
        return any(isinstance(e, exp.Slice) for e in node.expressions)
    if isinstance(node, exp.ArraySlice):
        return node.args.get("step") is not None or node.args.get("end") is None
    return False


def _is_unnest(node: exp.Expr) -> bool:
    node = node.this if isinstance(node, exp.Alias) else node
    return isinstance(node, (exp.Unnest, exp.Explode))


def _is_list_reduce_argument(node: exp.Lambda) -> bool:
    parent = node.parent
    return isinstance(parent, exp.Anonymous) and parent.name.lower() == "list_reduce"


def _list_aliases(tree: exp.Expr) -> set[str]:
    """Names given (by AS) to list-valued expressions anywhere in the model."""
    return {
        alias.alias.lower()
        for alias in tree.find_all(exp.Alias)
        if isinstance(alias.this, _ARRAY_PRODUCERS)
    }


def _is_list(node: exp.Expr | None, list_aliases: set[str]) -> bool:
    if isinstance(node, _ARRAY_PRODUCERS):
        return True
    return isinstance(node, exp.Column) and node.name.lower() in list_aliases


# --- reporting ----------------------------------------------------------------------------


def _fragment(node: exp.Expr, limit: int = 160) -> str:
    text = " ".join(node.sql(dialect="duckdb", comments=False).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _parse_failure(error: Exception, name: str) -> Finding:
    details = getattr(error, "errors", None) or [{}]
    line = details[0].get("line")
    return Finding(
        model=name,
        rule="parse-error",
        message=RULES["parse-error"],
        fragment=str(error).splitlines()[0][:160],
        line=int(line) if line else None,
    )


def _line_of(node: exp.Expr, sql: str) -> int | None:
    """Return the 1-based line of the node's first token whose text offset SQLGlot kept."""
    for candidate in node.walk():
        start = candidate.meta.get("start") if candidate.meta else None
        if start is not None:
            return sql.count("\n", 0, int(start)) + 1
    return None
