"""The analyst notebooks: executed top to bottom (nbmake) on a small generated warehouse, kept to
the public API, and opened by ``attribution notebooks``."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest
from notebook_warehouse import notebook_warehouse
from typer.testing import CliRunner

from attribution.cli import app
from attribution.marts import WAREHOUSE_ENV
from attribution.notebook_files import find_notebooks, jupyter_lab_command, pair_notebooks

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SOURCES = find_notebooks(NOTEBOOKS)
ALLOWED_IMPORTS = ("attribution", "plotly", "IPython.display")
# what would make a notebook compute things itself instead of calling the library
FORBIDDEN = (
    "import duckdb",
    "duckdb.",
    "SELECT ",
    ".sql(",
    ".con.",
    "import polars",
    "import pandas",
    "numpy",
)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return notebook_warehouse(tmp_path_factory)


def _nbmake(notebooks: list[Path], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbmake",
            "--overwrite",
            "-p",
            "no:cacheprovider",
            "-q",
            *map(str, notebooks),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
    )


def test_there_are_the_three_notebooks_the_analysts_need():
    names = [path.stem for path in SOURCES]
    assert names == [
        "01_attribution_explorer",
        "02_lift_deep_dive",
        "03_model_version_comparison",
    ]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom_on_a_generated_warehouse(source, warehouse, tmp_path):
    [ipynb] = [p for p in pair_notebooks(NOTEBOOKS, tmp_path) if p.stem == source.stem]
    env = {**os.environ, WAREHOUSE_ENV: str(warehouse)}
    done = _nbmake([ipynb], env, tmp_path)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    # nbmake executes in place: the executed notebook has outputs and no error output
    executed = json.loads(ipynb.read_text())
    outputs = [o for c in executed["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    assert outputs and not [o for o in outputs if o["output_type"] == "error"]


def test_a_notebook_reads_the_warehouse_given_as_its_parameter(warehouse, tmp_path):
    """No environment variable: the path is set in the parameters cell (as papermill would)."""
    ipynb = pair_notebooks(NOTEBOOKS, tmp_path)[2]
    notebook = json.loads(ipynb.read_text())
    [cell] = [c for c in notebook["cells"] if "parameters" in c["metadata"].get("tags", [])]
    source = "".join(cell["source"])
    assert "warehouse_path = None" in source
    cell["source"] = source.replace("warehouse_path = None", f"warehouse_path = {str(warehouse)!r}")
    ipynb.write_text(json.dumps(notebook))
    env = {k: v for k, v in os.environ.items() if k != WAREHOUSE_ENV}
    done = _nbmake([ipynb], env, tmp_path)
    assert done.returncode == 0, done.stdout[-4000:]
    assert str(warehouse) in ipynb.read_text()


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_uses_only_the_public_api(source):
    notebook = jupytext.read(source)
    code = [c.source for c in notebook.cells if c.cell_type == "code"]
    tags = [c.metadata.get("tags", []) for c in notebook.cells if c.cell_type == "code"]
    assert ["parameters"] in tags, "a papermill-style parameters cell"
    assert "warehouse_path = None" in code[tags.index(["parameters"])]
    for text in code:
        for word in FORBIDDEN:
            assert word not in text, (
                f"{source.name}: {word!r} (business logic belongs in attribution)"
            )
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = (
                    [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                )
                for name in names:
                    assert name.startswith(ALLOWED_IMPORTS), f"{source.name} imports {name}"
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "attribution"
            ):
                assert node.attr in __import__("attribution").__all__, node.attr


def test_pairing_writes_ipynb_once_and_keeps_later_lab_edits(tmp_path):
    folder = tmp_path / "nb"
    folder.mkdir()
    source = folder / "demo.py"
    source.write_text(SOURCES[0].read_text())
    (folder / "helper.py").write_text("x = 1\n")  # not a notebook: ignored
    [ipynb] = pair_notebooks(folder)
    assert ipynb == folder / "demo.ipynb"
    formats = json.loads(ipynb.read_text())["metadata"]["jupytext"]["formats"]
    assert formats == "ipynb,py:percent"
    edited = ipynb.read_text().replace("Attribution explorer", "My explorer")
    ipynb.write_text(edited)
    os.utime(ipynb, (source.stat().st_mtime + 10,) * 2)
    pair_notebooks(folder)
    assert "My explorer" in ipynb.read_text(), "a newer .ipynb is not overwritten"
    os.utime(source, (ipynb.stat().st_mtime + 10,) * 2)
    pair_notebooks(folder)
    assert "My explorer" not in ipynb.read_text(), "a newer .py is written through"


def test_cli_pairs_the_notebooks_and_opens_jupyterlab(warehouse, tmp_path, monkeypatch):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for source in SOURCES:
        (folder / source.name).write_text(source.read_text())
    record = tmp_path / "lab-call.json"
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    lab = fake_bin / "jupyter-lab"
    lab.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        f"json.dump({{'argv': sys.argv[1:], 'warehouse': os.environ.get({WAREHOUSE_ENV!r})}}, "
        f"open({str(record)!r}, 'w'))\n"
    )
    lab.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    result = CliRunner().invoke(
        app, ["notebooks", "--warehouse", str(warehouse), "--dir", str(folder), "--no-browser"]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.glob("*.ipynb")) == [f"{s.stem}.ipynb" for s in SOURCES]
    call = json.loads(record.read_text())
    assert call["warehouse"] == str(warehouse.resolve())
    assert f"--ServerApp.root_dir={folder.resolve()}" in call["argv"]
    assert "--no-browser" in call["argv"]


def test_cli_says_what_to_do_without_jupyterlab_or_warehouse(warehouse, tmp_path, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["notebooks", "--warehouse", str(warehouse), "--dir", str(NOTEBOOKS.parent / "notebooks")],
    )
    assert result.exit_code == 2
    assert "uv run --extra notebooks attribution notebooks" in " ".join(result.output.split())
    result = runner.invoke(app, ["notebooks", "--warehouse", str(tmp_path / "none.duckdb")])
    assert result.exit_code == 2 and "attribution demo" in " ".join(result.output.split())
    result = runner.invoke(
        app, ["notebooks", "--warehouse", str(warehouse), "--dir", str(tmp_path / "nope")]
    )
    assert result.exit_code == 2 and "no notebooks folder" in " ".join(result.output.split())


def test_lab_command_without_jupyterlab_names_the_extra(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(RuntimeError, match="--extra notebooks"):
        jupyter_lab_command(NOTEBOOKS)
