"""Publish a folder atomically: build it in a temporary sibling, then swap it into place.

A reader of the target sees either the previous folder or the new one, never a half-written one;
a failure while building leaves the previous folder untouched and removes the temporary one.

On Linux the swap is one ``renameat2(..., RENAME_EXCHANGE)`` call (both folders exist at every
instant); where that is not available (other systems, some file systems) two renames are used:
target -> backup, staging -> target; the target is then missing for an instant, but never partial.

A process killed while publishing (SIGKILL: no cleanup runs) leaves its temporary sibling
behind, never a partial target. Temporary folders carry their process id
(``.<target>.staging-<pid>-*``, ``.<target>.previous-<pid>-*``); the next publish of the same
target removes those of processes that no longer exist.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from attribution.faults import checkpoint

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _renameat2() -> Callable[..., int] | None:
    """Return libc's renameat2, or None where libc has none (non-Linux, old glibc)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return None
    function = getattr(libc, "renameat2", None)
    if function is None:
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    function.argtypes += [ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def exchange_paths(first: Path, second: Path) -> bool:
    """Atomically exchange two existing paths (Linux renameat2); return False if unsupported."""
    function = _renameat2()
    if function is None:
        return False
    result = function(
        _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
    )
    return result == 0


def swap_into_place(staging: Path, target: Path) -> None:
    """Move the finished ``staging`` folder to ``target``, replacing a previous target."""
    if not target.exists():
        staging.rename(target)
        return
    if exchange_paths(staging, target):
        checkpoint("report:swapped")
        shutil.rmtree(staging)  # now holds the previous folder
        return
    backup = Path(tempfile.mkdtemp(prefix=_temporary_prefix(target, "previous"), dir=target.parent))
    backup.rmdir()
    target.rename(backup)
    try:
        staging.rename(target)
    except BaseException:
        backup.rename(target)
        raise
    checkpoint("report:swapped")
    shutil.rmtree(backup, ignore_errors=True)


def _temporary_prefix(target: Path, kind: str) -> str:
    return f".{target.name}.{kind}-{os.getpid()}-"


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_abandoned_temporaries(target: Path) -> list[Path]:
    """Remove the temporary siblings of ``target`` left by processes that no longer exist
    (killed while publishing); return what was removed."""
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(staging|previous)-(\d+)-")
    removed = []
    for sibling in sorted(target.parent.iterdir()):
        match = pattern.match(sibling.name)
        if match and sibling.is_dir() and not _process_exists(int(match.group(2))):
            shutil.rmtree(sibling, ignore_errors=True)
            removed.append(sibling)
    return removed


def is_replaceable(target: Path, marker_file: str, marker: dict[str, str]) -> bool:
    """Return True if ``target`` is absent, empty, or a folder this publisher wrote before.

    A folder written before holds ``marker_file`` (JSON) with every key/value of ``marker``.
    Anything else is someone's folder and is never replaced.
    """
    if not target.exists():
        return True
    if not target.is_dir():
        return False
    if not any(target.iterdir()):
        return True
    try:
        found = json.loads((target / marker_file).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(found, dict) and all(found.get(k) == v for k, v in marker.items())


@contextmanager
def staged_directory(target: Path) -> Iterator[Path]:
    """Yield an empty temporary sibling of ``target``; on success swap it into place.

    On an exception the temporary folder is removed and ``target`` is left as it was.
    """
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_temporaries(target)
    staging = Path(tempfile.mkdtemp(prefix=_temporary_prefix(target, "staging"), dir=target.parent))
    try:
        yield staging
        staging.chmod(0o755)
        checkpoint("report:staged")
        swap_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
