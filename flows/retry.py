"""When a task may retry: transient failures only (I/O, a locked warehouse), never a data error.

A data error (a bad landing file, a failed publishing gate, failed expectations, invalid
settings) fails the same way on every attempt, so retrying it only delays the readable message.
"""

from __future__ import annotations

from typing import Any

from attribution.expectations import ExpectationsFailed
from attribution.ingest import IngestError
from attribution.pipeline import GateFailed

DATA_ERRORS: tuple[type[BaseException], ...] = (
    IngestError,
    ExpectationsFailed,
    GateFailed,
    ValueError,
)


def retry_unless_data_error(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry condition: retry unless the failure is one of ``DATA_ERRORS``."""
    error = state.data if isinstance(state.data, BaseException) else None
    if error is None:
        try:
            error = state.result(raise_on_failure=False)
        except Exception as exc:  # the state's exception itself
            error = exc
    return not isinstance(error, DATA_ERRORS)
