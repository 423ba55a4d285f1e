"""One run at a time per warehouse: ``<warehouse>.lock``, held from a run's first stage to its
``_runs`` record.

A pipeline run opens and closes the warehouse once per stage, so DuckDB's own file lock (held
only while a connection is open) would let a second run slip in between two stages of the
first. The run lock closes that gap: an exclusive ``flock`` on a file beside the warehouse,
taken before the run touches anything. A second run waits up to ``run_lock_wait_seconds``
(default 0) and then stops with ``WarehouseBusy`` naming the warehouse and the holder; it has
read and written nothing (the CLI exits 75, EX_TEMPFAIL).

The kernel releases a ``flock`` when its holder exits, however it ends (SIGKILL, a crash), so a
lock left by a dead run never blocks: the next run takes it over. The file holds the holder's
pid, host, start time and run id (JSON) for the messages; a clean release empties it, so content
found in an unlocked file names a run that ended without releasing it (killed), which the new
run reports. The file itself is never deleted (deleting a locked file lets two processes lock two
different files of the same name). Needs POSIX ``fcntl`` (Linux, macOS).
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

LOCK_SUFFIX = ".lock"
POLL_SECONDS = 0.2
EXIT_BUSY = 75  # EX_TEMPFAIL (sysexits.h): try again later


class WarehouseBusy(RuntimeError):
    """Another process holds the warehouse: a pipeline run (the run lock) or a DuckDB connection."""


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or last held) a warehouse's run lock."""

    pid: int
    host: str
    started_at: str  # ISO 8601, UTC
    run_id: str

    def describe(self) -> str:
        return f"run {self.run_id} (pid {self.pid} on {self.host}, started {self.started_at})"


def lock_path(warehouse: Path) -> Path:
    """Return the run lock file of a warehouse: ``<warehouse>.lock`` beside it."""
    return Path(f"{warehouse}{LOCK_SUFFIX}")


def read_holder(path: Path) -> LockHolder | None:
    """Return the holder written in a lock file (None: absent, empty or unreadable)."""
    try:
        found = json.loads(path.read_text(encoding="utf-8") or "null")
        return LockHolder(**found) if isinstance(found, dict) else None
    except (OSError, ValueError, TypeError):
        return None


def busy_message(warehouse: Path, holder: LockHolder | None, waited: float) -> str:
    """Return the message of a run refused because another run holds the warehouse."""
    who = holder.describe() if holder else "another process"
    return (
        f"warehouse {warehouse} is busy: {who} holds its run lock {lock_path(warehouse)}; "
        f"waited {waited:g} s (setting run_lock_wait_seconds). This run read and wrote nothing: "
        "run it again when that run has finished."
    )


class RunLock:
    """The run lock of one warehouse, for one run (not reentrant across objects)."""

    def __init__(self, warehouse: Path, run_id: str) -> None:
        self.warehouse = Path(warehouse)
        self.path = lock_path(self.warehouse)
        self.holder = LockHolder(
            pid=os.getpid(),
            host=socket.gethostname(),
            started_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            run_id=run_id,
        )
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, wait_seconds: float = 0.0) -> LockHolder | None:
        """Take the lock, waiting up to ``wait_seconds``; return the holder a dead run left in
        the file (taken over), or None. Raises ``WarehouseBusy`` when the wait runs out."""
        import fcntl

        if self._fd is not None:
            return None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        started = time.monotonic()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - started
                if waited >= wait_seconds:
                    os.close(fd)
                    raise WarehouseBusy(
                        busy_message(self.warehouse, read_holder(self.path), round(waited, 1))
                    ) from None
                time.sleep(min(POLL_SECONDS, wait_seconds - waited))
        left = read_holder(self.path)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(asdict(self.holder)).encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return left

    def release(self) -> None:
        """Empty the file (a clean end) and release the lock; a no-op if not held."""
        import fcntl

        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
