"""attribution: downstream-impact analytics for AI shopping assistants.

The public API for analysts is ``open_marts`` (``attribution.marts``; docs/api.md). It is loaded
on first use, so that ``import attribution`` (and the CLI's ``--help``) stays light.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("attribution")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"

if TYPE_CHECKING:
    from attribution.marts import Marts, open_marts, resolve_warehouse

__all__ = ["Marts", "__version__", "open_marts", "resolve_warehouse"]

_LAZY = {"Marts", "open_marts", "resolve_warehouse"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from attribution import marts

        return getattr(marts, name)
    raise AttributeError(f"module 'attribution' has no attribute {name!r}")
