"""The analyst notebooks on disk: find them, write their paired ``.ipynb``, build the lab command.

The notebooks are kept as jupytext percent-format ``.py`` files (diffable, linted, reviewed); the
``.ipynb`` next to each is generated from it (``pair_notebooks``) and not committed. Both carry
``formats: ipynb,py:percent``, so that JupyterLab with jupytext saves edits to both.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

JUPYTEXT_MARK = "format_name: percent"
NOTEBOOKS_DIR = Path("notebooks")


class NotebookError(RuntimeError):
    """The notebooks cannot be prepared or opened (missing folder, package or program)."""


def find_notebooks(folder: Path = NOTEBOOKS_DIR) -> list[Path]:
    """Return the jupytext percent-format ``.py`` notebooks in ``folder``, sorted by name."""
    if not folder.is_dir():
        raise NotebookError(
            f"no notebooks folder at {folder.resolve()}: run from the project's checkout "
            "(the notebooks are in its notebooks/ folder) or pass --dir"
        )
    found = [
        path
        for path in sorted(folder.glob("*.py"))
        if JUPYTEXT_MARK in path.read_text(encoding="utf-8")[:600]
    ]
    if not found:
        raise NotebookError(f"no jupytext percent-format notebooks in {folder}")
    return found


def pair_notebooks(folder: Path = NOTEBOOKS_DIR, out_dir: Path | None = None) -> list[Path]:
    """Write the ``.ipynb`` of every notebook in ``folder`` (into ``out_dir``, default beside it).

    A notebook is rewritten when its ``.ipynb`` is missing or older than the ``.py``; an
    ``.ipynb`` edited later than its ``.py`` (saved from JupyterLab) is left alone. Returns the
    ``.ipynb`` paths.
    """
    try:
        import jupytext
    except ImportError as exc:
        raise NotebookError(
            "jupytext is not installed: uv sync (dev) or uv run --extra notebooks ..."
        ) from exc
    written = []
    for source in find_notebooks(folder):
        target = (out_dir or source.parent) / f"{source.stem}.ipynb"
        if not target.exists() or target.stat().st_mtime < source.stat().st_mtime:
            notebook = jupytext.read(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            jupytext.write(notebook, target)
        written.append(target)
    return written


def jupyter_lab_command(folder: Path, *, open_browser: bool = True) -> list[str]:
    """Return the command line that opens JupyterLab on ``folder``.

    Raises ``NotebookError`` when JupyterLab is not installed (it is the optional extra
    ``notebooks``).
    """
    program = shutil.which("jupyter-lab")
    if program is None:
        raise NotebookError(
            "JupyterLab is not installed; it is an optional extra: "
            "uv run --extra notebooks attribution notebooks"
        )
    command = [program, f"--ServerApp.root_dir={folder.resolve()}"]
    if not open_browser:
        command.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers often run as root
        command.append("--allow-root")
    return command


def lab_environment(warehouse: Path) -> dict[str, str]:
    """Return this process's environment with the warehouse the notebooks should read."""
    from attribution.marts import WAREHOUSE_ENV

    return {**os.environ, WAREHOUSE_ENV: str(warehouse.resolve())}
