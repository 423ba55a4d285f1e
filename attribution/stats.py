"""Small statistics shared by SQL cross-checks and reports (pure functions, no I/O)."""

from __future__ import annotations

import math
from dataclasses import dataclass

Z_95 = 1.959963984540054


@dataclass(frozen=True)
class RatioLift:
    """Relative lift cr_engaged / cr_comparison - 1 with a 95% interval."""

    cr_engaged: float | None
    cr_comparison: float | None
    lift: float | None
    ci_low: float | None
    ci_high: float | None


def ratio_lift_interval(
    conversions_engaged: int, n_engaged: int, conversions_comparison: int, n_comparison: int
) -> RatioLift:
    """Return the lift of two conversion rates with a delta-method interval on log(ratio).

    >>> r = ratio_lift_interval(60, 1000, 40, 1000)
    >>> round(r.lift, 4), round(r.ci_low, 4), round(r.ci_high, 4)
    (0.5, 0.0152, 1.2163)
    """
    cr_e = conversions_engaged / n_engaged if n_engaged else None
    cr_c = conversions_comparison / n_comparison if n_comparison else None
    if cr_e is None or cr_c is None or cr_c == 0:
        return RatioLift(cr_e, cr_c, None, None, None)
    lift = cr_e / cr_c - 1
    if conversions_engaged == 0 or conversions_comparison == 0:
        return RatioLift(cr_e, cr_c, lift, None, None)
    se = math.sqrt((1 - cr_e) / conversions_engaged + (1 - cr_c) / conversions_comparison)
    log_ratio = math.log(cr_e / cr_c)
    return RatioLift(
        cr_e,
        cr_c,
        lift,
        math.exp(log_ratio - Z_95 * se) - 1,
        math.exp(log_ratio + Z_95 * se) - 1,
    )
