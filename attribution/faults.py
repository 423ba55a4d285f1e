"""Testing hook: kill the process at a named checkpoint, to prove that a killed run leaves
nothing half-done (``tests/test_faults.py``, docs/operations.md "When a run is killed").

``ATTRIBUTION_FAULT_AT=<checkpoint>`` in the environment of a pipeline process makes it send
itself SIGKILL when it reaches that checkpoint: no exception, no ``finally``, no atexit, exactly
as the OOM killer, ``kill -9`` or a power cut would end it. Only the environment variable
triggers it: it is not a setting (``Settings`` ignores it, and a settings file naming it is
rejected as an unknown key), and no data value reaches it. Unset (production), a checkpoint is
one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "ATTRIBUTION_FAULT_AT"

# checkpoint -> where it is (in run order)
CHECKPOINTS: dict[str, str] = {
    "run:locked": "the run lock is taken and the run recorded as running; nothing loaded yet",
    "ingest:file": "mid-load: the first landing file is committed, the others are not loaded",
    "ingest:done": "every landing file is committed; the build has not started",
    "build:models": "mid-build: the SQL layers are written inside the uncommitted build",
    "build:gated": "the gate passed and the run is recorded as published, not yet committed",
    "build:committed": "the build is committed (published); the report is not written",
    "report:staged": "mid-report: the new report is complete in its staging folder, not swapped",
    "report:swapped": "the new report is swapped into place; the previous one not yet removed",
    "report:done": "the report is published; the run's final _runs record is not written",
}


def checkpoint(name: str) -> None:
    """Kill this process with SIGKILL if ``ATTRIBUTION_FAULT_AT`` names this checkpoint."""
    if name not in CHECKPOINTS:
        raise ValueError(f"unknown fault checkpoint {name!r}")
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
