"""Injection and paths (issue 9): hostile values from data, settings, the CLI and file names
never reach SQL as text and come back byte-identical; landing paths cannot leave the landing
folder; a static check of every SQL string the package builds.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
from conftest import RUN_TIME, Landing, assignment, interaction, order, visit
from sql_sites import PACKAGE, function_bindings, package_functions, sql_sites, targets
from typer.testing import CliRunner

from attribution.config import Settings
from attribution.ingest import IngestError, discover_files, ingest_landing

# --------------------------------------------------------------------------------------------
# Static check: SQL text is built only from code
# --------------------------------------------------------------------------------------------
# An f-string (or + / % / str.format) whose text looks like SQL may interpolate only: constants,
# module-level names, identifiers quoted by _q, literals of constants (_lit/_in_list of
# constants), package functions (their own SQL is checked where they are defined), and locals
# built from those. Anything else must be listed in REVIEWED with the reason it cannot carry a
# value from data, settings or the CLI. Values go in as bound parameters ($name).
# Limits: SQL assembled without SQL-looking text in the same f-string, or passed through
# containers, is only seen where it meets SQL text.

# Identifier quoting: any argument is fine (a quoted identifier cannot break out).
IDENTIFIER_QUOTERS = frozenset({"_q", "quote_identifier"})
# Literal quoting (and plain builtins): only as safe as their arguments.
TRANSPARENT_CALLS = frozenset(
    {
        "_lit",
        "_in_list",
        "_sql_string",
        "len",
        "int",
        "float",
        "round",
        "str",
        "sorted",
        "list",
        "tuple",
        "enumerate",
        "range",
        "zip",
        "repr",
    }
)
PURE_METHODS = frozenset(
    {"join", "replace", "strip", "upper", "lower", "format", "values", "items", "keys", "get"}
)


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    function: str
    expression: str


class _Module:
    def __init__(self, path: Path, functions: set[str]) -> None:
        self.path = path
        self.tree = ast.parse(path.read_text())
        self.functions = functions
        self.globals: set[str] = set()
        for node in self.tree.body:
            if isinstance(node, ast.Assign | ast.AnnAssign):
                assigned = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in assigned:
                    self.globals.update(targets(t))
            elif isinstance(node, ast.ImportFrom | ast.Import):
                self.globals.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, ast.FunctionDef | ast.ClassDef):
                self.globals.add(node.name)

    def findings(self) -> list[Finding]:
        found: list[Finding] = []
        for func in ast.walk(self.tree):
            if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                found += _Function(self, func).findings()
        return found


class _Function:
    def __init__(self, module: _Module, func: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.module = module
        self.func = func
        self.bindings = function_bindings(func)

    def safe(self, node: ast.AST, seen: frozenset[str] = frozenset()) -> bool:
        """True if the expression's text can only come from code: constants, module names,
        quoting helpers, package functions (checked on their own), and locals built from them."""
        match node:
            case ast.Constant():
                return True
            case ast.JoinedStr():
                return all(
                    self.safe(v.value, seen)
                    for v in node.values
                    if isinstance(v, ast.FormattedValue)
                )
            case ast.Name(id=name):
                if name in seen:
                    return True
                if name in self.bindings:
                    return all(self.safe(v, seen | {name}) for v in self.bindings[name])
                return name in self.module.globals
            case ast.Attribute(value=value):
                return self.safe(value, seen)
            case ast.Subscript(value=value, slice=index):
                return self.safe(value, seen) and self.safe(index, seen)
            case ast.BinOp(left=left, right=right):
                return self.safe(left, seen) and self.safe(right, seen)
            case ast.IfExp(body=body, orelse=orelse):
                return self.safe(body, seen) and self.safe(orelse, seen)
            case ast.Tuple() | ast.List() | ast.Set():
                return all(self.safe(e, seen) for e in node.elts)
            case ast.Dict():
                return all(self.safe(v, seen) for v in node.values if v is not None)
            case ast.GeneratorExp() | ast.ListComp() | ast.SetComp():
                return self.safe(node.elt, seen)
            case ast.Compare() | ast.BoolOp() | ast.UnaryOp():
                return True  # a bool
            case ast.Call(func=func):
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                args = [*node.args, *(k.value for k in node.keywords)]
                if name in IDENTIFIER_QUOTERS:
                    return True
                if name in TRANSPARENT_CALLS:
                    return all(self.safe(a, seen) for a in args)
                if name in self.module.functions and isinstance(func, ast.Name):
                    return True  # a package function: its own SQL text is checked where defined
                if isinstance(func, ast.Attribute) and name in PURE_METHODS:
                    return self.safe(func.value, seen) and all(
                        self.safe(a, seen) for a in node.args
                    )
                return False
        return False

    def findings(self) -> list[Finding]:
        found = []
        for site in sql_sites(self.func, self.module.path.name):
            for part in site.parts:
                if not self.safe(part):
                    found.append(
                        Finding(
                            self.module.path.name,
                            getattr(part, "lineno", site.line),
                            self.func.name,
                            ast.unparse(part),
                        )
                    )
        return found


def sql_interpolation_findings(package: Path = PACKAGE) -> list[Finding]:
    """Every interpolation into SQL text in the package that the rules cannot prove safe."""
    functions = package_functions()
    found: list[Finding] = []
    for path in sorted(package.glob("*.py")):
        found += _Module(path, functions).findings()
    return sorted(set(found), key=lambda f: (f.file, f.line, f.expression))


# (file, function) -> (interpolated expressions, why none of them carries data, settings or CLI
# values). Reviewed for issue 9; a new interpolation fails test_sql_is_built_only_from_code.
REVIEWED: dict[tuple[str, str], tuple[frozenset[str], str]] = {
    ("build_window.py", "changed_kpi_lift_periods"): (
        frozenset({"columns"}),
        "column names of a temp table the module creates from a constant query",
    ),
    ("expectations.py", "_batch_sql"): (
        frozenset({"name", "source.raw_table", "int(limit)"}),
        "contract column and table names; limit is an int",
    ),
    ("ingest.py", "_check_sql"): (
        frozenset({"text", "staged.not_object_expr", "staged.row_expr"}),
        "expressions the stagers build from constants and _q (file names are bound)",
    ),
    ("ingest.py", "_column_rules"): (
        frozenset({"t", "v"}),
        "quoted column expressions passed by _check_sql / rule_names",
    ),
    ("ingest.py", "_typed_expr"): (
        frozenset({"t", "col.duckdb_type"}),
        "a quoted column expression; a contract type",
    ),
    ("ingest.py", "_raw_sql"): (
        frozenset({"extra", "obj", "not_object"}),
        "expressions of _Staged built from constants ($raw_keys, $extra_names bound)",
    ),
    ("ingest.py", "_stage_parquet"): (
        frozenset({"i", "casts"}),
        "positional column numbers; file column names only through _q",
    ),
    ("ingest.py", "_jsonl_staged"): (
        frozenset(
            {
                "', '.join((f\"count(*) FILTER (json_exists(_raw, {_lit('$.' + c)}))\" "
                "for c in required))",
                "_in_list(names)",
            }
        ),
        "contract column names of a source from contract.SOURCES",
    ),
    ("ingest.py", "_load_one"): (frozenset({"staged.join_col"}), "a _Staged row expression"),
    ("ingest.py", "_append_records"): (
        frozenset({"table"}),
        "one of the module's temp table names (_T_IN, _T_LINES)",
    ),
    ("lake.py", "register_duckdb_views"): (
        frozenset({"table"}),
        "lake table names from lake.RAW_TABLE_DAYS and the model list",
    ),
    ("lake.py", "write_duckdb_table"): (
        frozenset({"day_column"}),
        "a model's date column (sql/ files); COPY takes no parameters, paths via _sql_string",
    ),
    ("lift.py", "_pre_period_sql"): (
        frozenset({"key", "index", "units"}),
        "column and table names chosen by the lift code",
    ),
    ("lift.py", "_window_outcomes_sql"): (
        frozenset({"key", "index"}),
        "column names chosen by the lift code",
    ),
    ("lift.py", "write_lift_tables"): (
        frozenset({"c", "select"}),
        "column names of fct_conversion_lift (DESCRIBE), as quoted identifiers",
    ),
    ("lift.py", "_write_frame"): (frozenset({"name"}), "lift table names (constants)"),
    ("lift.py", "with_settled_diagnostics"): (
        frozenset({"name"}),
        "lift diagnostics table names (constants)",
    ),
    # lift_aggregates: generated aggregate SQL; every name is a module constant, a column list
    # of the module, or SQL text the module built; data values are bound ($level_i, dates)
    ("lift_aggregates.py", "create"): (
        frozenset({"name", "sql"}),
        "temp relation names (module constants) and the module's own queries",
    ),
    ("lift_aggregates.py", "register"): (frozenset({"name"}), "module relation names"),
    ("lift_aggregates.py", "drop"): (frozenset({"name"}), "module relation names"),
    ("lift_aggregates.py", "_segments_sql"): (
        frozenset({"source", "values"}),
        "a query of the module; dimension names from the module's DIMENSIONS",
    ),
    ("lift_aggregates.py", "_comparison_sql"): (
        frozenset({"', '.join((f'i.{key}' for key in keys))", "ck", "k", "on_keys"}),
        "key column names passed by the module (FIT_KEYS and constants)",
    ),
    ("lift_aggregates.py", "_cuped_sql"): (
        frozenset({"k", "on"}),
        "key column names passed by the module",
    ),
    ("lift_aggregates.py", "_periods"): (
        frozenset({"day", "k", "source"}),
        "column names and a query of the module",
    ),
    ("lift_aggregates.py", "_pending_units_sql"): (
        frozenset({"', '.join((f'u.{c}' for c in columns))", "source"}),
        "FIT_KEYS and numbered design columns; a module relation name",
    ),
    ("lift_aggregates.py", "_newton_sql"): (
        frozenset({"', '.join(sums)", "source"}),
        "sums over numbered design columns; a module relation name",
    ),
    ("lift_aggregates.py", "_moments_sql"): (
        frozenset({"', '.join(stats)"}),
        "aggregates of design expressions whose level values are bound ($level_i)",
    ),
    ("marts.py", "kpi"): (frozenset({"table"}), "kpi_{grain}_segments, grain checked first"),
    ("report_data.py", "_kpi_rows"): (
        frozenset({"table", "column", "tie_break"}),
        "a KPI_TABLES key (KeyError otherwise) and its constant columns",
    ),
    ("run_log.py", "unpublished_run_ids"): (
        frozenset({"s.raw_table", "unions"}),
        "raw table names from contract.SOURCES",
    ),
    ("run_log.py", "record_run"): (
        frozenset({"name", "select"}),
        "_runs column names from the pipeline's dict; every value bound",
    ),
    ("version_compare.py", "version_units"): (
        frozenset({"credit_model"}),
        "checked against config.RULE_MODELS first",
    ),
    ("warehouse.py", "connect"): (
        frozenset({"memory_limit.strip()", "int(threads)"}),
        "SET takes no parameters: memory_limit must match MEMORY_LIMIT first, threads an int",
    ),
    ("warehouse.py", "exact_money_sum"): (
        frozenset({"expression"}),
        "callers pass rule-model column names (config.RULE_MODELS)",
    ),
    ("warehouse.py", "run_model"): (
        frozenset({"model.name", "model.sql", "model.date_column"}),
        "a model parsed from the repository's sql/ files",
    ),
    ("warehouse.py", "_count"): (frozenset({"table"}), "model table names, quoted"),
    ("warehouse.py", "_slices_of"): (
        frozenset({"model.slice_column", "model.sliced_by"}),
        "a model file's header (date column, driving table), quoted",
    ),
    ("warehouse.py", "offending_rows"): (
        frozenset({"audit.sql"}),
        "an audit query from sql/audits",
    ),
}


def unreviewed(findings: list[Finding]) -> list[str]:
    return [
        f"{f.file}:{f.line} {f.function}: {f.expression}"
        for f in findings
        if f.expression not in REVIEWED.get((f.file, f.function), (frozenset(), ""))[0]
    ]


def test_sql_is_built_only_from_code() -> None:
    findings = sql_interpolation_findings()
    assert unreviewed(findings) == []
    # no stale review: every reviewed expression still exists
    seen = {(f.file, f.function, f.expression) for f in findings}
    stale = [
        (file, function, expression)
        for (file, function), (expressions, _) in REVIEWED.items()
        for expression in expressions
        if (file, function, expression) not in seen
    ]
    assert stale == []


def test_the_static_check_sees_interpolated_values(tmp_path: Path) -> None:
    """The rules flag a parameter, a settings attribute and a literal of data; they pass
    constants, quoted identifiers and bound parameters."""
    (tmp_path / "bad.py").write_text(
        "LIMIT = 5\n"
        "def _q(x): return x\n"
        "def _lit(x): return x\n"
        "def f(con, settings, segment, table):\n"
        "    con.execute(f\"SELECT * FROM t WHERE segment = '{segment}'\")\n"
        '    con.execute(f"SELECT * FROM t WHERE m IN ({_lit(settings.marketplace)})")\n'
        "    con.execute('DELETE FROM t WHERE id = ' + segment)\n"
        "    con.execute('SELECT * FROM t WHERE a = {}'.format(segment))\n"
        "    con.execute(f'SELECT * FROM {_q(table)} LIMIT {LIMIT}')\n"
        "    con.execute('SELECT * FROM t WHERE s = $s', {'s': segment})\n"
        "    cols = ', '.join(_q(c) for c in ('a', 'b'))\n"
        "    con.execute(f'SELECT {cols} FROM t')\n"
    )
    found = sql_interpolation_findings(tmp_path)
    assert [(f.line, f.expression) for f in found] == [
        (5, "segment"),
        (6, "_lit(settings.marketplace)"),
        (7, "segment"),
        (8, "segment"),
    ]


# --------------------------------------------------------------------------------------------
# Hostile values through ingest, the pipeline, the report and the CLI
# --------------------------------------------------------------------------------------------

HOSTILE = [
    "'; DROP TABLE raw_orders; --",
    '"; DROP TABLE raw_visits; --',
    "$1",
    "$marketplaces",
    "back\\slash\\'",
    "Zürich 市場 🛒",
    "../../etc/passwd",
    "%s {0} ?",
    "</script><script>alert(1)</script>",
    "x" * 3000,
]
MARKETS = {f"M{i}{value}": "USD" for i, value in enumerate(HOSTILE)}


def hostile_landing(landing: Landing) -> None:
    """Two days in every hostile marketplace: a visitor, an assistant user who buys, an
    experiment assignment; hostile ids, sessions, products and model versions; hostile names."""
    for i, (market, value) in enumerate(zip(MARKETS, HOSTILE, strict=True)):
        user = f"user{i}{value}"
        for day in ("2024-02-01", "2024-02-02"):
            tag = f"{day}{value}"
            landing.csv(
                "interactions",
                f"i{i}.csv",
                [
                    interaction(
                        event_id=f"e{tag}",
                        user_id=user,
                        session_id=f"s{tag}",
                        ts=f"{day}T10:00:00Z",
                        marketplace=market,
                        product_ids=f"p{value.replace('|', '')}",
                        model_version=f"mv{value}",
                    )
                ],
                dt=day,
            )
            landing.jsonl(
                "orders",
                f"o{i}.jsonl",
                [
                    order(
                        order_id=f"o{tag}",
                        user_id=user,
                        ts=f"{day}T12:00:00Z",
                        marketplace=market,
                        product_id=f"p{value}",
                    )
                ],
                dt=day,
            )
            landing.csv(
                "visits",
                f"v{i}.csv",
                [visit(user_id=user, ts=f"{day}T09:00:00Z", marketplace=market)],
                dt=day,
            )
        landing.csv(
            "assignments",
            f"a{i}.csv",
            [assignment(user_id=user, experiment_id=f"x{value}")],
        )
    # hostile file names
    for name in ("a'; DROP TABLE quarantine; --.csv", "$1 %s.csv", "名前 ü.csv"):
        landing.csv("visits", name, [visit(user_id=name, marketplace=next(iter(MARKETS)))])


@pytest.fixture(scope="module")
def hostile_warehouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Settings]:
    from attribution.pipeline import run_pipeline

    root = tmp_path_factory.mktemp("hostile")
    landing = Landing(root / "landing")
    hostile_landing(landing)
    settings = Settings(
        marketplaces=MARKETS, windows_days=(1, 7), report_png="never", privacy_min_users=1
    )
    run_pipeline(
        settings,
        landing_dir=landing.root,
        warehouse_path=root / "w.duckdb",
        report_dir=root / "report",
        expectations=False,
        run_time=datetime(2024, 2, 3, 12),
    )
    return root / "w.duckdb", root / "report", settings


def column_values(warehouse: Path, sql: str) -> set:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return {row[0] for row in con.execute(sql).fetchall()}
    finally:
        con.close()


def test_hostile_values_come_back_byte_identical_everywhere(hostile_warehouse) -> None:
    warehouse, report, _ = hostile_warehouse
    n = len(HOSTILE)
    assert column_values(warehouse, "SELECT count(*) FROM quarantine") == {0}
    assert column_values(warehouse, "SELECT DISTINCT marketplace FROM raw_orders") == set(MARKETS)
    assert column_values(warehouse, "SELECT DISTINCT marketplace FROM kpi_daily") == set(MARKETS)
    assert column_values(warehouse, "SELECT experiment_id FROM raw_assignments") == {
        f"x{v}" for v in HOSTILE
    }
    assert column_values(warehouse, "SELECT DISTINCT experiment_id FROM stg_assignments") == {
        f"x{v}" for v in HOSTILE
    }
    segments = column_values(warehouse, "SELECT DISTINCT segment FROM fct_conversion_lift")
    assert {f"marketplace={m}" for m in MARKETS} <= segments
    assert {f"model_version=mv{v}" for v in HOSTILE} <= segments
    sessions = column_values(warehouse, "SELECT session_id FROM assistant_sessions")
    assert sessions == {f"s{d}{v}" for d in ("2024-02-01", "2024-02-02") for v in HOSTILE}
    credited = column_values(
        warehouse, "SELECT DISTINCT order_id FROM fct_attribution WHERE last_touch = 1"
    )
    assert len(credited) == 2 * n
    names = column_values(warehouse, "SELECT DISTINCT _file FROM raw_visits")
    assert {
        "visits/a'; DROP TABLE quarantine; --.csv",
        "visits/$1 %s.csv",
        "visits/名前 ü.csv",
    } <= names
    page = (report / "index.html").read_text()
    assert "alert(1)" in page  # the hostile marketplace is shown ...
    assert "<script>alert(1)" not in page  # ... escaped (tables) or as <\/script> (chart JSON)


def test_hostile_values_through_the_cli(hostile_warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    from attribution.cli import app

    warehouse, _, settings = hostile_warehouse
    before = column_values(warehouse, "SELECT count(*) FROM fct_attribution")
    monkeypatch.setenv("ATTRIBUTION_MARKETPLACES", json.dumps(settings.marketplaces))
    runner = CliRunner()
    # an order id that exists, one that is hostile and absent
    found = runner.invoke(
        app, ["explain", "--order", f"o2024-02-01{HOSTILE[0]}", "--warehouse", str(warehouse)]
    )
    assert found.exit_code == 0, found.output
    assert "DROP TABLE raw_orders" in found.output
    absent = runner.invoke(
        app, ["explain", "--order", "x' OR '1'='1", "--warehouse", str(warehouse)]
    )
    assert absent.exit_code == 2 and "is not in the warehouse" in absent.output
    period = runner.invoke(app, ["lift", "--period", "all'; --", "--warehouse", str(warehouse)])
    assert period.exit_code == 2 and "Unknown period" in period.output
    bad_date = runner.invoke(
        app, ["run", "--date", "2024-02-01'; --", "--warehouse", str(warehouse)]
    )
    assert bad_date.exit_code != 0 and "Traceback" not in bad_date.output
    assert column_values(warehouse, "SELECT count(*) FROM fct_attribution") == before


def test_hostile_settings_from_the_environment_are_data(
    landing: Landing, con, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATTRIBUTION_MARKETPLACES", '{"\\u0027) OR 1=1; --": "EUR", "$1": "GBP"}')
    settings = Settings()
    assert set(settings.marketplaces) == {"') OR 1=1; --", "$1"}
    landing.csv(
        "visits",
        "v.csv",
        [
            visit(marketplace="') OR 1=1; --"),
            visit(user_id="u2", marketplace="$1"),
            visit(user_id="u3"),
        ],
    )
    result = ingest_landing(con, landing.root, settings, run_id="r", run_time=RUN_TIME)
    assert result.files[0].rules == {"unknown_marketplace": 1}  # US is not configured here
    assert sorted(con.execute("SELECT marketplace FROM raw_visits").fetchall()) == [
        ("$1",),
        ("') OR 1=1; --",),
    ]


# --------------------------------------------------------------------------------------------
# Landing paths cannot leave the landing folder
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "escape",
    ["file", "partition", "source"],
)
def test_symlinks_out_of_the_landing_folder_are_refused(
    tmp_path: Path, landing: Landing, con, escape: str
) -> None:
    outside = tmp_path / "outside"
    (outside / "dt=2024-02-01").mkdir(parents=True)
    secret = outside / "dt=2024-02-01" / "secret.csv"
    secret.write_text("user_id,ts,marketplace,channel\nsecret,2024-02-01,US,web\n")
    (outside / "secret.csv").write_bytes(secret.read_bytes())
    visits = landing.root / "visits"
    if escape == "file":
        visits.mkdir(parents=True)
        (visits / "link.csv").symlink_to(secret)
    elif escape == "partition":
        visits.mkdir(parents=True)
        (visits / "dt=2024-02-01").symlink_to(outside / "dt=2024-02-01")
    else:
        visits.symlink_to(outside)
    with pytest.raises(IngestError, match="outside the landing folder") as info:
        ingest_landing(con, landing.root, Settings(), run_id="r", run_time=RUN_TIME)
    assert "refusing to read it" in str(info.value)
    assert con.execute("SELECT count(*) FROM raw_visits").fetchall() == [(0,)]


def test_links_inside_the_landing_folder_and_odd_names_stay_inside(landing: Landing, con) -> None:
    path = landing.csv("visits", "real.csv", [visit()], dt="2024-02-01")
    (landing.root / "visits" / "alias.csv").symlink_to(path)  # inside: fine (same bytes: skipped)
    landing.bytes("visits", "x.csv", b"", dt="2024-02-01'; --")  # not a partition: ignored
    landing.bytes("visits", "x.csv", b"", dt="..")  # a folder named dt=..
    files, ignored = discover_files(landing.root)
    assert [f.rel for f in files] == ["visits/alias.csv", "visits/dt=2024-02-01/real.csv"]
    assert all(f.path.is_relative_to(landing.root.resolve()) for f in files)
    assert {i.path for i in ignored} == {"visits/dt=2024-02-01'; --", "visits/dt=.."}
    result = ingest_landing(con, landing.root, Settings(), run_id="r", run_time=RUN_TIME)
    assert [f.status for f in result.files] == ["loaded", "already_loaded"]


def test_a_dotdot_landing_argument_is_resolved_not_trusted(tmp_path: Path, con) -> None:
    landing = Landing(tmp_path / "a" / "landing")
    landing.csv("visits", "v.csv", [visit()])
    winding = tmp_path / "a" / "landing" / ".." / "landing"
    result = ingest_landing(con, winding, Settings(), run_id="r", run_time=RUN_TIME)
    assert [f.file for f in result.files] == ["visits/v.csv"]
    with pytest.raises(IngestError, match="does not exist"):
        ingest_landing(con, tmp_path / "a" / "landing" / ".." / "nope", Settings(), run_id="r2")
