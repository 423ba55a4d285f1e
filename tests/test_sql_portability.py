"""The portability lint: every model in sql/ passes, each rule refuses its construct and accepts
the portable spelling, and every model transpiles to Spark SQL that SQLGlot parses back.

No JVM: SQLGlot only. Whether the Spark SQL gives the same rows is the parity suite's job.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlglot
from sql_sites import PACKAGE, module_sql_strings, rendered_sites

from attribution.portability import (
    RULES,
    Finding,
    NotPortableError,
    lint_models,
    lint_sql,
    spark_parameter_names,
    to_spark_sql,
)
from attribution.warehouse import sql_dir


def _model_files() -> list[str]:
    root = sql_dir()
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.sql"))


def _rules(sql: str) -> set[str]:
    return {finding.rule for finding in lint_sql(sql, "snippet")}


def test_every_model_in_sql_passes_the_lint() -> None:
    findings = lint_models(sql_dir())
    assert not findings, "\n".join(str(f) for f in findings)


def test_the_lint_sees_every_layer_and_the_audits() -> None:
    layers = {name.split("/")[0] for name in _model_files()}
    assert layers == {"staging", "intermediate", "marts", "kpi", "audits"}


# (rule, refused DuckDB snippet, the portable spelling of the same thing)
CASES: list[tuple[str, str, str]] = [
    (
        "asof-join",
        "select * from a asof join b on a.k = b.k and a.t >= b.t",
        "select * from a inner join b on a.k = b.k and a.t >= b.t",
    ),
    (
        "epoch",
        "select epoch(ts) from t",
        "select date_diff('microsecond', cast('1970-01-01' as timestamp), ts) / 1e6 from t",
    ),
    ("epoch", "select epoch_us(ts) from t", "select date_diff('microsecond', a, ts) from t"),
    ("to-days", "select d + to_days(3) from t", "select d + interval 3 day from t"),
    ("hugeint", "select cast(x as hugeint) from t", "select cast(x as decimal(38, 0)) from t"),
    ("star-modifier", "select * exclude (a) from t", "select b, c from t"),
    ("star-modifier", "select * replace (a + 1 as a) from t", "select a + 1 as a, b from t"),
    (
        "date-diff-unit",
        "select date_diff('hour', a, b) from t",
        "select date_diff('microsecond', a, b) / 3.6e9 from t",
    ),
    (
        "date-diff-unit",
        "select date_diff('day', a, b) from t",
        "select date_diff('day', cast(a as date), cast(b as date)) from t",
    ),
    ("decimal-literal-division", "select x / 3600.0 from t", "select x / 3600e0 from t"),
    (
        "division-not-double",
        "select revenue / nullif(n, 0) from t",
        "select cast(revenue as double) / nullif(n, 0) from t",
    ),
    ("unguarded-division", "select 1e0 / n from t", "select 1e0 / nullif(n, 0) from t"),
    (
        "unguarded-division",
        "select 1e0 / nullif(n, 1) from t",
        "select 1e0 / nullif(n, 0e0) from t",
    ),
    ("integer-division", "select a // 2 from t", "select floor(a / 2e0) from t"),
    (
        "implicit-null-order",
        "select row_number() over (order by a, b nulls first) from t",
        "select row_number() over (order by a nulls last, b nulls first) from t",
    ),
    (
        "implicit-null-order",
        "select lag(a) over (partition by k order by a desc) from t",
        "select lag(a) over (partition by k order by a desc nulls last) from t",
    ),
    (
        "window-without-order",
        "select row_number() over (partition by k) from t",
        "select row_number() over (partition by k order by a nulls last) from t",
    ),
    (
        "window-without-order",
        "select lag(a) over w from t window w as (partition by k)",
        "select lag(a) over w from t window w as (partition by k order by a nulls last)",
    ),
    ("approximate-aggregate", "select median(x) from t", "select avg(x) from t"),
    (
        "approximate-aggregate",
        "select percentile_cont(0.5) within group (order by x nulls last) from t",
        "select avg(x) from t",
    ),
    (
        "approximate-aggregate",
        "select approx_count_distinct(x) from t",
        "select count(distinct x) from t",
    ),
    (
        "ordered-aggregate",
        "select list({'x': x} order by y nulls last) from t",
        "select list_sort(list({'y': y, 'x': x}), 'ASC', 'NULLS LAST') from t",
    ),
    ("list-aggregate-nulls", "select list(x) from t", "select list({'x': x}) from t"),
    (
        "list-sort-order",
        "select list_sort(l, 'DESC', 'NULLS FIRST') from t",
        "select list_sort(l, 'DESC', 'NULLS LAST') from t",
    ),
    (
        "list-length",
        "select len(list_filter(l, lambda x: x > 0)) from t",
        "select array_length(list_filter(l, lambda x: x > 0)) from t",
    ),
    (
        "list-length",
        "with s as (select list_sort(l) as sorted from t) select len(sorted) from s",
        "with s as (select list_sort(l) as sorted from t) select array_length(sorted) from s",
    ),
    ("list-slice-syntax", "select l[2:3] from t", "select array_slice(l, 2, 3) from t"),
    (
        "lambda-index",
        "select list_filter(l, lambda x, i: i > 1) from t",
        "select array_slice(l, 2, array_length(l)) from t",
    ),
    (
        "list-reduce",
        "select list_reduce(l, lambda a, b: a + b) from t",
        "select list_reduce(l, lambda a, b: a + b, 0e0) from t",
    ),
    (
        "multiple-unnest",
        "select unnest(a) as x, unnest(b) as y from t",
        "select unnest(range(1, array_length(a) + 1)) as i from t",
    ),
    ("any-value", "select any_value(x) from t group by k", "select min(x) from t group by k"),
    (
        "date-trunc-uncast",
        "select date_trunc('month', d) from t",
        "select cast(date_trunc('month', d) as date) from t",
    ),
    (
        "qualify",
        "select a from t qualify row_number() over (order by a nulls last) = 1",
        "select a from (select a, row_number() over (order by a nulls last) as r from t) "
        "where r = 1",
    ),
    ("unknown-function", "select list_slice(l, 1, 2) from t", "select array_slice(l, 1, 2) from t"),
    ("parse-error", "select a from t where (a = 1", "select a from t where (a = 1)"),
]


@pytest.mark.parametrize(("rule", "bad", "good"), CASES, ids=[c[0] for c in CASES])
def test_rule_refuses_its_construct_and_accepts_the_portable_spelling(
    rule: str, bad: str, good: str
) -> None:
    assert rule in _rules(bad)
    assert lint_sql(good, "snippet") == []


def test_every_rule_has_a_case() -> None:
    assert {case[0] for case in CASES} == set(RULES)


def test_a_finding_names_model_rule_line_and_fragment() -> None:
    sql = "-- grain: one row per a\nselect\n    a,\n    x / 3600.0 as hours\nfrom t"
    [finding] = lint_sql(sql, "marts/fct_x")
    assert (finding.model, finding.rule, finding.line) == (
        "marts/fct_x",
        "decimal-literal-division",
        4,
    )
    assert finding.fragment == "x / 3600.0"
    assert finding.message == RULES["decimal-literal-division"]


def test_comments_do_not_count_as_explicit_null_order() -> None:
    sql = "select row_number() over (order by a /* nulls last */) from t"
    assert _rules(sql) == {"implicit-null-order"}


@pytest.mark.parametrize("path", _model_files())
def test_every_model_transpiles_to_spark_sql_that_parses_back(path: str) -> None:
    sql = (sql_dir() / path).read_text(encoding="utf-8")
    spark_sql = to_spark_sql(sql, path)
    tree = sqlglot.parse_one(spark_sql, read="spark")
    assert "$" not in spark_sql
    markers = sorted({p.name for p in tree.find_all(sqlglot.exp.Placeholder)})
    assert markers == spark_parameter_names(sql)
    assert not [f for f in tree.find_all(sqlglot.exp.Anonymous) if f.name.upper() == "LIST_REDUCE"]


def test_parameters_become_named_spark_markers() -> None:
    sql = "select * from t where d between $start_date and $end_date -- not $commented"
    assert to_spark_sql(sql) == "SELECT * FROM t WHERE d BETWEEN :start_date AND :end_date"
    assert spark_parameter_names(sql) == ["end_date", "start_date"]


def test_list_reduce_with_initial_value_becomes_spark_aggregate() -> None:
    sql = "select list_reduce(w, lambda total, x: total + x, 0e0) as s from t"
    assert to_spark_sql(sql) == "SELECT AGGREGATE(w, 0e0, (total, x) -> total + x) AS s FROM t"


def test_list_indexes_and_slices_stay_one_based_on_spark() -> None:
    # SQLGlot alone shifts l[i] to 0-based only when it can infer an integer index
    sql = "select l[n - k + i] as x, l[2] as y, s['f'] as z, array_slice(l, 2, n) as w from t"
    assert to_spark_sql(sql) == (
        "SELECT ELEMENT_AT(l, n - k + i) AS x, ELEMENT_AT(l, 2) AS y, s['f'] AS z, "
        "SLICE(l, 2, ((n) - (2)) + 1) AS w FROM t"
    )


def test_rewrites_compose_inside_each_other() -> None:
    sql = "select list_reduce(array_slice(l, m[1], 3), lambda a, b: a + b, 0e0) as s from t"
    assert to_spark_sql(sql) == (
        "SELECT AGGREGATE(SLICE(l, ELEMENT_AT(m, 1), ((3) - (ELEMENT_AT(m, 1))) + 1), 0e0, "
        "(a, b) -> a + b) AS s FROM t"
    )


def test_a_model_that_fails_the_lint_is_not_transpiled() -> None:
    with pytest.raises(NotPortableError) as raised:
        to_spark_sql("select x / 3600.0 from t", "marts/bad")
    assert [f.rule for f in raised.value.findings] == ["decimal-literal-division"]
    assert "marts/bad:1" in str(raised.value)


# --- SQL embedded in Python --------------------------------------------------------------------
# Every SQL string a function of attribution/*.py builds (tests/sql_sites.py finds them on the
# syntax tree, as the injection check does) is rendered with representative values and linted
# like a model: f-strings and .format templates filled from the module's constants and locals,
# parameters and loop variables standing in by name (REPRESENTATIVE where a name alone does not
# render), fragments checked to be part of a rendered statement.

REPRESENTATIVE: dict[str, object] = {"touch_column": "touch_type", "limit": 10, "threads": 2}

# Embedded SQL that runs only on DuckDB by design: (file, function) -> why. A listed function
# must still have a finding, a fragment outside every statement or a site that does not render.
DUCKDB_ONLY: dict[tuple[str, str], str] = {
    ("cli.py", "_mark_demo"): "marks the demo's DuckDB warehouse file (now())",
    ("expectations.py", "_batch_sql"): "Great Expectations batches of the DuckDB raw tables",
    ("lake.py", "duckdb_reader_sql"): "DuckDB's own reader of the lake (* EXCLUDE (dt))",
    ("lake.py", "register_duckdb_views"): "DuckDB views over the lake folders",
    ("lift.py", "_ensure_lift_columns"): "ALTER TABLE of the DuckDB warehouse (polars types)",
    ("lift_views.py", "overlap"): "reads the DuckDB warehouse; * EXCLUDE keeps every diagnostic "
    "column the lift stage writes (a Python frame: no fixed column list in sql/)",
    ("warehouse.py", "run_model"): "DuckDB's CREATE / DELETE + INSERT around each sql/ model, "
    "which is linted itself",
}
# Whole modules that run only on DuckDB: file -> why.
DUCKDB_ONLY_MODULES: dict[str, str] = {
    "ingest.py": "ingest stays DuckDB on both engines (docs/spark.md): landing files to raw_*",
}
# Text the SQL pattern matches that is not SQL: (file, function) -> what it is.
NOT_SQL: dict[tuple[str, str], str] = {
    ("lift.py", "balance_verdict"): "prose: 'NOT balanced'",
    ("report_data.py", "_balance_summary"): "prose: 'NOT balanced'",
}


@dataclass(frozen=True)
class EmbeddedCheck:
    """What the embedded-SQL check saw: findings, fragments in no statement, unrendered sites."""

    findings: list[tuple[tuple[str, str], Finding]]
    loose_fragments: list[tuple[tuple[str, str], str]]
    unrendered: list[tuple[tuple[str, str], str]]
    statements: int


def embedded_check(package: Path = PACKAGE) -> EmbeddedCheck:
    """Render every SQL site of the package, lint the statements, find the loose fragments."""
    rendered, failed = rendered_sites(package, REPRESENTATIVE)
    rendered += module_sql_strings(package)
    statements = [r for r in rendered if r.is_statement]
    corpus = "\n".join(" ".join(r.text.split()) for r in statements)
    findings = [
        ((r.file, r.function), finding)
        for r in statements
        for finding in lint_sql(r.text, f"{r.file}:{r.line} {r.function}")
    ]
    loose = [
        ((r.file, r.function), f"{r.file}:{r.line} {max(r.pieces, key=len)}")
        for r in rendered
        if not r.is_statement and r.pieces and max(r.pieces, key=len) not in corpus
    ]
    unrendered = [
        ((file, function), f"{file}:{line} {why}") for file, function, line, why in failed
    ]
    return EmbeddedCheck(findings, loose, unrendered, len(statements))


def _not_exempt(key: tuple[str, str]) -> bool:
    return key not in DUCKDB_ONLY and key not in NOT_SQL and key[0] not in DUCKDB_ONLY_MODULES


@pytest.fixture(scope="module")
def embedded() -> EmbeddedCheck:
    return embedded_check()


def test_sql_embedded_in_python_passes_the_lint(embedded: EmbeddedCheck) -> None:
    found = [str(f) for key, f in embedded.findings if _not_exempt(key)]
    assert not found, "\n".join(found)
    assert embedded.statements > 100  # the walk sees the package's queries


def test_every_embedded_fragment_is_linted_inside_a_statement(embedded: EmbeddedCheck) -> None:
    loose = [where for key, where in embedded.loose_fragments if _not_exempt(key)]
    assert not loose, "\n".join(loose)
    failed = [why for key, why in embedded.unrendered if _not_exempt(key)]
    assert not failed, "\n".join(failed)


def test_no_stale_exemption(embedded: EmbeddedCheck) -> None:
    seen = {key for key, _ in embedded.findings + embedded.loose_fragments + embedded.unrendered}
    stale = [key for key in [*DUCKDB_ONLY, *NOT_SQL] if key not in seen]
    stale += [file for file in DUCKDB_ONLY_MODULES if file not in {k[0] for k in seen}]
    assert stale == []


def test_the_embedded_check_sees_sql_built_in_python(tmp_path: Path) -> None:
    """A query in an f-string, one composed from a module template and a fragment, one grown by
    ``+=``, a fragment used nowhere, and a portable query: all but the last are flagged."""
    (tmp_path / "queries.py").write_text(
        "TEMPLATE = 'SELECT {column} FROM t ORDER BY {column} NULLS LAST'\n"
        "WHERE = 'WHERE a > 0'\n"
        "def unordered(con, table):\n"
        "    return con.execute(f'SELECT a FROM {table} ORDER BY a').fetchall()\n"
        "def composed(con, column):\n"
        "    sql = TEMPLATE.format(column=column)\n"
        "    return con.sql(f'SELECT * FROM ({sql}) {WHERE} AND b / c > 1')\n"
        "def orphan():\n"
        "    return ' AND x IS NOT NULL AND median(y) > 1'\n"
        "def appended(con, limit):\n"
        "    sql = 'SELECT a FROM t'\n"
        "    if limit:\n"
        "        sql += f' ORDER BY a LIMIT {int(limit)}'\n"
        "    return con.sql(sql)\n"
        "def portable(con):\n"
        "    return con.sql('SELECT a FROM t ORDER BY a NULLS LAST, b DESC NULLS LAST')\n"
    )
    check = embedded_check(tmp_path)
    assert sorted((key[1], f.rule) for key, f in check.findings) == [
        ("appended", "implicit-null-order"),
        ("composed", "division-not-double"),
        ("composed", "unguarded-division"),
        ("unordered", "implicit-null-order"),
    ]
    assert [key[1] for key, _ in check.loose_fragments] == ["orphan"]
    # unordered, the filled template, composed, appended, portable
    assert check.statements == 5
