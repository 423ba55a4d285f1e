"""Synthetic landing folder with a planted, known assistant effect (the truth in ``truth.json``).

``generate_landing`` simulates a retailer's logs (storefront visits, assistant interactions,
orders with late cancellations and returns, daily FX rates, a holdout experiment and a product
catalogue), writes them in the landing layout of the data contract (section 1) and returns the
truth dict: the causal lift of the assistant computed from both potential outcomes with common
random numbers. Everything is vectorised numpy; polars/pyarrow only format and write files.

Docs: ``docs/generator.md``.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from attribution.config import ARMS, CHANNELS, EVENT_TYPES, ORDER_STATUSES, Settings, load_settings
from attribution.contract import SOURCES

__all__ = ["EXPERIMENT_ID", "MODEL_VERSIONS", "generate_landing"]

_APP, _WEB, _VOICE = (CHANNELS.index(c) for c in ("app", "web", "voice"))
_PLACED, _CANCELLED, _RETURNED = (
    ORDER_STATUSES.index(s) for s in ("placed", "cancelled", "returned")
)
_TREATMENT, _HOLDOUT = (ARMS.index(a) for a in ("treatment", "holdout"))

GENERATOR_VERSION = "2"  # 2: engagement driven by observable pre-period behaviour
EXPERIMENT_ID = "exp_assistant_holdout"
MODEL_VERSIONS: tuple[str, str] = ("shopbot-v1", "shopbot-v2")

_MS_MIN = 60_000
_MS_HOUR = 3_600_000
_MS_DAY = 86_400_000
_KEY_SHIFT = np.int64(1) << np.int64(37)  # (user, ms since origin) packed into one int64

# --- base rates (documented in docs/generator.md) -------------------------------------------
_ACTIVITY_SIGMA = 1.0  # log-activity ~ N(0, sigma): heavy-tailed user activity
_VISIT_BASE = 0.05  # daily visit probability = base * exp(elasticity * log-activity), capped
_VISIT_ELASTICITY = 0.3
_VISIT_CAP = 0.6
_PROPENSITY_RHO = 0.6  # corr(shopping propensity, log-activity)
# A visit day is a "mission" day (the user came to buy) with probability
# sigmoid(a + b * propensity + c * log-activity): keen and frequent shoppers come to buy more.
_MISSION_LOGIT = (-2.4, 1.6, 0.3)
# p0 = sigmoid(a_mission_or_browse + b * propensity) per visit day.
_PURCHASE_LOGIT = (-0.35, -4.5, 0.8)
# Engagement on a visit day: e = sigmoid(a + b log1p(pre_visit_days_28)
# + c log1p(pre_orders_28) + d log1p(tenure_days) + marketplace + channel), the covariates of
# attribution.lift's propensity model (see _engagement_base).
_ENGAGE_LOGIT = (-1.1, 1.0, 1.5, -0.3)
_ENGAGE_MARKETPLACE = {"US": 0.0, "UK": -0.1, "IN": 0.3, "DE": -0.3, "FR": -0.2, "IT": -0.1}
_ENGAGE_MARKETPLACE |= {"ES": 0.0, "CA": 0.1}
_ENGAGE_CHANNEL = {"app": 0.3, "web": 0.0, "voice": -0.4}
_PRE_DAYS = 28  # pre-period of the engagement covariates (attribution.lift.PRE_DAYS)
_P_CAP = 0.95
_SAME_DAY_SHARE = 0.6  # lag mixture: hours (same day) ...
_SAME_DAY_MEAN_MS = 2.5 * _MS_HOUR
_TAIL_MEAN_MS = 5.0 * _MS_DAY  # ... or an exponential tail with mean 5 days
_EXTRA_VISITS_MEAN = 0.5
_EXTRA_VISIT_GAP_MEAN_MS = 2 * _MS_HOUR
_EXTRA_SESSIONS_MEAN = 0.65  # extra sessions on an engaged day ~ Poisson(mean * activity^0.7)
_SESSION_ELASTICITY = 0.7
_SESSION_EVENTS_PMF = (0.12, 0.14, 0.14, 0.13, 0.11, 0.1, 0.08, 0.07, 0.06, 0.05)  # 1..10
_EVENT_GAP_MEAN_MS = 90_000
_EVENT_GAP_MAX_MS = 12 * _MS_MIN
_SESSION_GAP_MIN_MS = 31 * _MS_MIN
_SESSION_GAP_EXTRA_MEAN_MS = 75 * _MS_MIN
_FIRST_VISIT_LO_MS = 45 * _MS_MIN  # first visits fall in [00:45, 21:00) UTC so that sessions
_FIRST_VISIT_SPAN_MS = 21 * _MS_HOUR - _FIRST_VISIT_LO_MS  # never cross midnight
_DAY_END_MARGIN_MS = _MS_MIN
_VOICE_SHARE_SESSIONS = 0.03
_VOICE_SHARE_VISITS = 0.01
_ROLLOUT_START_FRACTION = 0.45
_ROLLOUT_DAYS = 7
_LINES_PMF = (0.55, 0.25, 0.12, 0.08)  # 1..4 lines per order
_QUANTITY_PMF = (0.82, 0.12, 0.04, 0.01, 0.01)  # 1..5
_SURFACED_LINE_SHARE = 0.55  # share of an engaged day's order lines taken from surfaced products
_CANCEL_SHARE = 0.03
_RETURN_SHARE = 0.05
_CANCEL_MAX_MS = 3 * _MS_DAY
_RETURN_MIN_MS, _RETURN_MAX_MS = 3 * _MS_DAY, 25 * _MS_DAY
_GZIP_LEVEL = 3

_MARKETPLACE_WEIGHTS = {
    "US": 0.38,
    "UK": 0.12,
    "IN": 0.13,
    "DE": 0.10,
    "FR": 0.07,
    "IT": 0.06,
    "ES": 0.06,
    "CA": 0.08,
}
# UTC offset written on interaction timestamps (minutes); others are written with 'Z'.
_TS_OFFSET_MIN = {"IN": 330, "FR": 60, "DE": 60, "CA": -240}
# Shift of the daily activity curve (fraction of the day) so that regions peak at local daytime.
_DIURNAL_SHIFT = {"US": 0.2, "CA": 0.2, "UK": 0.0, "FR": -0.05, "DE": -0.05, "IT": -0.05}
_DIURNAL_SHIFT |= {"ES": -0.05, "IN": -0.25}
_ORDER_PREFIX = {"US": 111, "UK": 202, "IN": 403, "FR": 171, "DE": 302, "IT": 405, "ES": 406}
_ORDER_PREFIX |= {"CA": 701}
_PRICE_FACTOR = {"IN": 0.85, "UK": 1.05, "CA": 1.08}
_FX_LEVEL = {
    "USD": 1.0,
    "GBP": 1.27,
    "EUR": 1.08,
    "INR": 0.012,
    "CAD": 0.73,
    "JPY": 0.0068,
    "AUD": 0.66,
    "MXN": 0.055,
    "BRL": 0.19,
    "CHF": 1.12,
    "SEK": 0.095,
    "PLN": 0.25,
    "SGD": 0.74,
    "AED": 0.2723,
    "SAR": 0.2667,
    "TRY": 0.03,
    "CNY": 0.14,
}
_FX_DAILY_VOL = 0.004
_CATEGORIES = (
    "Electronics",
    "Home & Kitchen",
    "Books",
    "Toys & Games",
    "Beauty",
    "Sports & Outdoors",
    "Clothing",
    "Shoes",
    "Grocery",
    "Health & Personal Care",
    "Pet Supplies",
    "Office Products",
    "Tools & Home Improvement",
    "Automotive",
    "Baby",
    "Garden & Outdoor",
    "Jewelry",
    "Video Games",
    "Music",
    "Camera & Photo",
)
_BRAND_HEAD = "Nor Zen Vel Kai Lumi Tor Ari Bel Cor Dex Eco Fio Gal Hal Iso Jun Kor Lux Mar Nex"
_BRAND_TAIL = "vik tro ora ix ena ton ly io ex ara um on ella aro ino ent ia us ko ar"

# Per event type: probability as first event of a session, later in a session, and the
# distribution of the number of surfaced products (index = count).
_EVENT_FIRST = {"query": 0.6, "help_me_decide": 0.12, "product_question": 0.16}
_EVENT_FIRST |= {"comparison": 0.06, "review_summary": 0.06, "product_click": 0.0}
_EVENT_LATER = {"query": 0.24, "help_me_decide": 0.08, "product_question": 0.2}
_EVENT_LATER |= {"comparison": 0.12, "review_summary": 0.13, "product_click": 0.23}
_EVENT_PRODUCTS = {
    "query": (0.5, 0.3, 0.15, 0.05),
    "product_question": (0.0, 0.8, 0.2),
    "product_click": (0.0, 1.0),
    "review_summary": (0.0, 0.9, 0.1),
    "comparison": (0.0, 0.0, 0.6, 0.3, 0.1),
    "help_me_decide": (0.0, 0.0, 0.3, 0.3, 0.2, 0.2),
}

_MALFORMED_KINDS: dict[str, tuple[str, ...]] = {
    "interactions": (
        "missing_user_id",
        "unparseable_ts",
        "future_ts",
        "unknown_marketplace",
        "bad_channel",
        "bad_event_type",
    ),
    "orders": (
        "missing_user_id",
        "unparseable_ts",
        "future_ts",
        "unknown_marketplace",
        "quantity_zero",
        "negative_amount",
        "bad_currency",
        "bad_status",
    ),
    # Parquet carries typed timestamps, so an unparseable one cannot occur there.
    "visits": ("missing_user_id", "future_ts", "unknown_marketplace", "bad_channel"),
}
_BAD_TS = "2026-13-45T99:00"
_BAD_MARKETPLACE = "XX"
_BAD_CHANNEL = "fax"
_BAD_EVENT_TYPE = "telepathy"
_BAD_CURRENCY = "US$"
_BAD_STATUS = "lost"

_DEFINITIONS = """\
Unit of time: timestamps are UTC instants; a window of W days is [index, index + W*24h], both \
ends inclusive. A user converts in window W if they place an order within W days after the index \
time that stays placed (at least one line is never cancelled or returned), as the product counts \
conversions. Complete windows only, as the product counts them: a unit counts for W only if its \
index UTC date + W <= the last day of the period (a lift with no such unit is null). Malformed \
and duplicate rows are extra rows and never part of the truth.
Potential outcomes use common random numbers: every visitor-day (user x UTC day with a visit) has \
one uniform u, one purchase lag and one set of order contents (lines and their final status); \
without the assistant that day buys iff u < p0, with the assistant iff \
u < min(p0 * (1 + effect), 0.95). Using the assistant changes nothing else that day.
Engagement: on a visit day a user engages with a probability that depends only on what the \
product observes before that day (visit days and placed orders in the previous 28 days, tenure, \
marketplace, channel of the day's first visit), plus unobserved_confounding * mission (0 by \
default), where a mission day is a day the user came to buy.
itt_conversion_lift[W]: over all users (both arms), index = assigned_at (first visit ts, or the \
period start for users who never visit); world A = everyone treatment-eligible (each user's own \
engagement draws realised, holdout users included, with their own world-A order history), \
world N = nobody engages; lift = P(convert in W | A) / P(convert in W | N) - 1.
att_conversion_lift[W]: unit = engaged visitor-day (the user used the assistant that day in the \
realised data), index = first visit ts of that day; lift = P(convert in W as realised) / P(convert \
in W had that one day not been engaged, everything else as realised) - 1.
observed_conversion_lift[W]: naive comparison in the realised data, index = first visit ts of \
the day: CR over engaged visitor-days / CR over the other visitor-days (holdout days included) \
- 1; larger than the ATT because shoppers who buy more anyway use the assistant more."""


@dataclass(frozen=True)
class _Catalogue:
    product_ids: pa.Array  # string
    brand_names: np.ndarray  # str, per brand
    product_brand: np.ndarray
    product_category: np.ndarray
    price_usd: np.ndarray
    cdf: np.ndarray  # popularity cdf over products sorted by category
    guide: np.ndarray  # guide table of the cdf (see _cdf_index)
    sorted_products: np.ndarray  # product index at each cdf position
    cat_lo: np.ndarray  # cdf mass before category c
    cat_hi: np.ndarray  # cdf mass up to the end of category c
    cat_first: np.ndarray  # first cdf position of category c
    cat_last: np.ndarray  # last cdf position of category c (first - 1 when empty)


# --- small vectorised helpers ----------------------------------------------------------------


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _positions(counts: np.ndarray) -> np.ndarray:
    """Position of each element within its group for ``np.repeat(groups, counts)``."""
    starts = np.cumsum(counts) - counts
    return np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(starts, counts)


def _segmented_cumsum(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting at each group of consecutive ``counts`` elements."""
    total = np.cumsum(values)
    nonempty = counts > 0
    starts = (np.cumsum(counts) - counts)[nonempty]
    base = np.repeat(total[starts] - values[starts], counts[nonempty])
    return total - base


def _segment_sums(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Sum of each group of consecutive ``counts`` (all >= 1) elements."""
    if not len(counts):
        return np.zeros(0, dtype=values.dtype)
    return np.add.reduceat(values, np.cumsum(counts) - counts)


def _draw_pmf(rng: np.random.Generator, pmf: np.ndarray, size: int) -> np.ndarray:
    """Indices drawn from a probability vector (inverse cdf, vectorised; zero mass never drawn)."""
    cdf = np.cumsum(pmf / pmf.sum())
    last = int(np.flatnonzero(pmf > 0)[-1])
    return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), last)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a bijection of uint64, so distinct inputs give distinct ids."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _hex_matrix(x: np.ndarray) -> np.ndarray:
    """(n, 16) uint8 matrix of the lowercase hex digits of a uint64 array."""
    text = x.astype(">u8").tobytes().hex().encode("ascii")
    return np.frombuffer(text, dtype=np.uint8).reshape(-1, 16)


def _bytes_to_arrow(matrix: np.ndarray) -> pa.Array:
    """Rows of a uint8 character matrix as an Arrow string array."""
    width = matrix.shape[1]
    flat = np.ascontiguousarray(matrix).view(f"S{width}").ravel()
    return pa.array(flat, type=pa.binary(width)).cast(pa.binary()).cast(pa.string())


def _event_ids(index: np.ndarray, salt: int) -> pa.Array:
    """UUID-shaped unique event ids from event indices (two splitmix64 halves)."""
    idx = index.astype(np.uint64)
    h1 = _hex_matrix(_mix64(idx ^ np.uint64(salt)))
    h2 = _hex_matrix(_mix64(idx + np.uint64((salt * 7 + 12345) % 2**63)))
    out = np.full((len(idx), 36), ord("-"), dtype=np.uint8)
    out[:, 0:8], out[:, 9:13], out[:, 14:18] = h1[:, 0:8], h1[:, 8:12], h1[:, 12:16]
    out[:, 19:23], out[:, 24:36] = h2[:, 0:4], h2[:, 4:16]
    return _bytes_to_arrow(out)


def _base36_ids(index: np.ndarray, prefix: str, width: int, mult: int, add: int) -> pa.Array:
    """Unique ids ``prefix + base36`` of an affine bijection of ``index`` modulo 36**width."""
    modulus = 36**width
    if len(index) and int(index.max()) * mult >= 2**63 - modulus:
        raise ValueError("too many ids for this id scheme")
    x = (index.astype(np.int64) * np.int64(mult) + np.int64(add)) % np.int64(modulus)
    alphabet = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", dtype=np.uint8)
    out = np.empty((len(index), len(prefix) + width), dtype=np.uint8)
    out[:, : len(prefix)] = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    for pos in range(width - 1, -1, -1):
        out[:, len(prefix) + pos] = alphabet[x % 36]
        x //= 36
    return _bytes_to_arrow(out)


def _put_digits(out: np.ndarray, col: int, values: np.ndarray, width: int) -> None:
    """Write ``values`` as zero-padded decimal digits into ``out[:, col:col + width]``."""
    for pos in range(width - 1, -1, -1):
        out[:, col + pos] = 48 + values % 10
        values = values // 10


def _ts_arrow(
    ms: np.ndarray,
    offset_min: np.ndarray | None = None,
    *,
    millis: bool,
    unparseable: np.ndarray | None = None,
    future: np.ndarray | None = None,
) -> pa.Array:
    """ISO 8601 strings of UTC epoch milliseconds (vectorised, no per-row Python).

    Rows are written in their local ``offset_min`` (``+05:30`` style) where it is non-zero and
    with ``Z`` otherwise; ``future`` rows get the year 2099 and ``unparseable`` rows a garbage
    timestamp (the malformed kinds).
    """
    n = len(ms)
    offset = np.zeros(n, np.int64) if offset_min is None else offset_min.astype(np.int64)
    local = ms.astype(np.int64) + offset * _MS_MIN
    day, rem = np.divmod(local, _MS_DAY)
    # civil date from days since 1970-01-01 (H. Hinnant's algorithm, proleptic Gregorian)
    z = day + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    dom = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    if future is not None:
        year = np.where(future, 2099, year)
    body = 23 if millis else 19
    out = np.empty((n, body + 6), dtype=np.uint8)
    _put_digits(out, 0, year, 4)
    _put_digits(out, 5, month, 2)
    _put_digits(out, 8, dom, 2)
    _put_digits(out, 11, rem // _MS_HOUR, 2)
    _put_digits(out, 14, rem // _MS_MIN % 60, 2)
    _put_digits(out, 17, rem // 1000 % 60, 2)
    out[:, [4, 7]], out[:, 10], out[:, [13, 16]] = ord("-"), ord("T"), ord(":")
    if millis:
        out[:, 19] = ord(".")
        _put_digits(out, 20, rem % 1000, 3)
    out[:, body] = np.where(offset == 0, ord("Z"), np.where(offset > 0, ord("+"), ord("-")))
    _put_digits(out, body + 1, np.abs(offset) // 60, 2)
    out[:, body + 3] = ord(":")
    _put_digits(out, body + 4, np.abs(offset) % 60, 2)
    lengths = np.where(offset == 0, body + 1, body + 6)
    data = out[np.arange(body + 6) < lengths[:, None]]
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    strings = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))
    if unparseable is not None and unparseable.any():
        strings = pc.if_else(pa.array(unparseable), pa.scalar(_BAD_TS), strings)
    return strings


def _null_where(values: pa.Array, mask: np.ndarray) -> pa.Array:
    return pc.if_else(pa.array(mask), pa.nulls(len(values), values.type), values)


def _ceil_seconds(ms: np.ndarray) -> np.ndarray:
    return -(-ms // 1000) * 1000


def _amount_strings(cents: np.ndarray) -> pl.Series:
    """Decimal strings with two places from integer cents (negative allowed)."""
    sign = np.where(cents < 0, "-", "")
    mag = np.abs(cents)
    whole = pl.Series(mag // 100).cast(pl.String)
    frac = pl.Series(mag % 100).cast(pl.String).str.zfill(2)
    return (pl.Series(sign) + whole + "." + frac).alias("amount")


def _day_slices(sorted_days: np.ndarray, day: int) -> slice:
    lo = int(np.searchsorted(sorted_days, day, side="left"))
    hi = int(np.searchsorted(sorted_days, day, side="right"))
    return slice(lo, hi)


def _gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=_GZIP_LEVEL, mtime=0)


def _write_bytes(path: Path, data: bytes, compress: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_gzip_bytes(data) if compress else data)


def _write_parquet(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd", use_dictionary=True, write_statistics=True)


def _lift(num: float, den: float) -> float | None:
    return None if den == 0 else round(float(num) / float(den) - 1.0, 6)


def _rate(num: float, den: float) -> float:
    return round(float(num) / float(den), 6) if den else 0.0


# --- simulation pieces -----------------------------------------------------------------------


def _catalogue(rng: np.random.Generator, users: int) -> _Catalogue:
    n_products = max(200, users // 20)
    n_brands = int(np.clip(n_products // 50, 30, 200))
    n_cat = len(_CATEGORIES)
    heads, tails = _BRAND_HEAD.split(), _BRAND_TAIL.split()
    combos = rng.choice(len(heads) * len(tails), size=n_brands, replace=False)
    brand_names = np.array([heads[c // len(tails)] + tails[c % len(tails)] for c in combos])
    cat_weight = rng.dirichlet(np.full(n_cat, 2.0))
    brand_weight = 1.0 / np.arange(1, n_brands + 1) ** 0.9
    brand_weight = brand_weight[rng.permutation(n_brands)]
    brand_cat = rng.choice(n_cat, size=n_brands, p=cat_weight)
    product_brand = rng.choice(n_brands, size=n_products, p=brand_weight / brand_weight.sum())
    product_category = np.where(
        rng.random(n_products) < 0.85,
        brand_cat[product_brand],
        rng.choice(n_cat, size=n_products, p=cat_weight),
    )
    popularity = 1.0 / np.arange(1, n_products + 1) ** 1.05
    popularity = popularity[rng.permutation(n_products)]
    cat_median = np.exp(rng.uniform(np.log(8.0), np.log(150.0), n_cat))
    raw_price = cat_median[product_category] * rng.lognormal(0.0, 0.6, n_products)
    price_usd = np.maximum(np.round(raw_price) - 0.01, 1.99)
    sorted_products = np.argsort(product_category, kind="stable")
    cdf = np.cumsum(popularity[sorted_products])
    cdf /= cdf[-1]
    counts = np.bincount(product_category, minlength=n_cat)
    cat_first = np.cumsum(counts) - counts
    cat_last = cat_first + counts - 1
    cdf0 = np.concatenate([[0.0], cdf])
    cat_lo, cat_hi = cdf0[cat_first], cdf0[cat_last + 1]
    product_ids = _base36_ids(np.arange(n_products), "B0", 8, 1_000_000_007, 1_618_033_988_749)
    return _Catalogue(
        product_ids,
        brand_names,
        product_brand,
        product_category,
        price_usd,
        cdf,
        np.searchsorted(cdf, np.arange(4 * n_products) / (4 * n_products), side="right"),
        sorted_products,
        cat_lo,
        cat_hi,
        cat_first,
        cat_last,
    )


def _cdf_index(cdf: np.ndarray, guide: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``searchsorted(cdf, v, 'right')`` clipped to the last index, via a guide table.

    ``guide[b]`` is the number of cdf entries <= b / len(guide), so the answer is at least
    ``guide[floor(v * len(guide))]``; a few vectorised steps walk forward from there. Much
    faster than a binary search for tens of millions of random draws.
    """
    last = len(cdf) - 1
    idx = guide[np.minimum((v * len(guide)).astype(np.int64), len(guide) - 1)]
    idx = np.minimum(idx, last)
    active = np.flatnonzero((cdf[idx] <= v) & (idx < last))
    while active.size:
        idx[active] += 1
        step = idx[active]
        active = active[(cdf[step] <= v[active]) & (step < last)]
    return idx


def _draw_products(
    rng: np.random.Generator, cat: _Catalogue, size: int, category: np.ndarray | None
) -> np.ndarray:
    """Products by popularity, within ``category`` (one per draw) when given."""
    u = rng.random(size)
    if category is None:
        return cat.sorted_products[_cdf_index(cat.cdf, cat.guide, u)]
    lo, hi = cat.cat_lo[category], cat.cat_hi[category]
    pos = _cdf_index(cat.cdf, cat.guide, lo + u * (hi - lo))
    pos = np.clip(pos, cat.cat_first[category], cat.cat_last[category])
    return cat.sorted_products[pos]


def _fx_table(rng: np.random.Generator, currencies: list[str], days: int) -> np.ndarray:
    """Daily rate_to_usd (currency x day) as a random walk around realistic levels."""
    levels = np.array([_FX_LEVEL.get(c, 1.0) for c in currencies])
    steps = rng.normal(0.0, _FX_DAILY_VOL, (len(currencies), days))
    steps[:, 0] = rng.normal(0.0, 0.01, len(currencies))
    rates = levels[:, None] * np.exp(np.cumsum(steps, axis=1))
    usd = np.array([c == "USD" for c in currencies])
    rates[usd] = 1.0
    return np.round(rates, 8)


def _event_gaps(rng: np.random.Generator, n_events: np.ndarray) -> np.ndarray:
    """Gaps (ms) before each event of sessions with ``n_events`` events; 0 before the first."""
    gaps = np.minimum(
        10_000 + rng.exponential(_EVENT_GAP_MEAN_MS, int(n_events.sum())), _EVENT_GAP_MAX_MS
    ).astype(np.int64)
    gaps[np.cumsum(n_events) - n_events] = 0
    return gaps


def _engagement_base(
    vd_user: np.ndarray,
    vd_day: np.ndarray,
    u_mkt: np.ndarray,
    first_channel: np.ndarray,
    codes: list[str],
    days: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Engagement logit without the pre-period orders term, and two of its covariates.

    ``pre_visit_days`` = the user's visit days among the ``_PRE_DAYS`` days before the day,
    ``tenure_days`` = days since the user's first visit day; both as ``attribution.lift``
    computes them (inside the data). Marketplace of the user, channel of the day's first visit.
    """
    key = vd_user * days + vd_day
    sorted_keys = np.sort(key)
    pre_visit_days = np.searchsorted(sorted_keys, key, side="left") - np.searchsorted(
        sorted_keys, vd_user * days + np.maximum(vd_day - _PRE_DAYS, 0), side="left"
    )
    first_day = np.full(int(vd_user.max()) + 1 if len(vd_user) else 0, days, dtype=np.int64)
    np.minimum.at(first_day, vd_user, vd_day)
    tenure_days = vd_day - first_day[vd_user]
    intercept, b_visits, _, b_tenure = _ENGAGE_LOGIT
    mkt_effect = np.array([_ENGAGE_MARKETPLACE.get(c, 0.0) for c in codes])
    channel_effect = np.array([_ENGAGE_CHANNEL.get(c, 0.0) for c in CHANNELS])
    logit = (
        intercept
        + b_visits * np.log1p(pre_visit_days)
        + b_tenure * np.log1p(tenure_days)
        + mkt_effect[u_mkt[vd_user]]
        + channel_effect[first_channel]
    )
    return logit, pre_visit_days, tenure_days


def _rollout_share(ms: np.ndarray, rollout_start: int) -> np.ndarray:
    return np.clip((ms - rollout_start) / (_ROLLOUT_DAYS * _MS_DAY), 0.0, 1.0)


# --- the public function ---------------------------------------------------------------------


def generate_landing(
    out_dir: Path,
    *,
    users: int,
    days: int,
    seed: int,
    start_date: date = date(2026, 9, 1),
    effect: float = 0.15,
    holdout_share: float = 0.05,
    malformed_share: float = 0.002,
    duplicate_share: float = 0.01,
    unobserved_confounding: float = 0.0,
    settings: Settings | None = None,
    overwrite: bool = False,
    shard: int = 0,
) -> dict[str, Any]:
    """Write a synthetic landing folder to ``out_dir`` and return its truth (also ``truth.json``).

    One run simulates ``users`` shoppers over ``days`` UTC days from ``start_date``: storefront
    visits (heavy-tailed activity), assistant sessions on some visit days (self-selected:
    shoppers who visited and bought more in the previous 28 days use it more), orders that
    follow visit days by hours to weeks, late cancellations/returns, daily FX rates, a holdout
    experiment ``exp_assistant_holdout`` and a product catalogue. Using the assistant on a visit
    day multiplies that day's purchase probability by ``1 + effect`` (capped at 0.95) and
    changes nothing else.

    Layout (data contract section 1)::

        interactions/dt=YYYY-MM-DD/part-00000.jsonl.gz   orders/dt=.../part-00000.csv.gz
        visits/dt=.../part-00000.parquet                 fx_rates/dt=.../part-00000.csv
        assignments/assignments.csv                      products/products.parquet
        truth.json

    Args:
        out_dir: folder to write; must be empty or absent unless ``overwrite``.
        users: number of users (all are assigned to the experiment).
        days: length of the period in days (>= 1).
        seed: seed of the single ``numpy`` PCG64 generator; the same arguments give
            byte-identical files.
        start_date: first UTC day of the period.
        effect: relative effect of using the assistant on a visit day's purchase probability.
        holdout_share: probability that a user is in the holdout arm (never sees the assistant).
        malformed_share: extra malformed rows per row-checked source (interactions, orders,
            visits), spread over the rule kinds the contract rejects.
        duplicate_share: share of interaction and visit rows written twice.
        unobserved_confounding: extra engagement logit on "mission" days (the user came to buy),
            which nothing before the day reveals; 0 (default) makes engagement depend only on
            pre-period behaviour that the product's adjusted method observes.
        settings: marketplaces/currencies and windows; ``load_settings()`` when None.
        overwrite: remove the generator's own folders and ``truth.json`` in ``out_dir`` first.
        shard: for data too large for one process's memory: shard ``k`` > 0 adds ``users`` more
            shoppers to the landing folder that shard 0 (same ``users``, ``days``, ``seed``,
            ``start_date``) wrote. Its users, orders, sessions and events get ids of their own
            (users and orders from index ``k * users``; sessions and events from another salt),
            its files are ``part-0000k``, its truth ``truth-shard-k.json``; it draws from its own
            random stream and writes no FX rates or catalogue (shard 0's serve all), and an
            extra ``assignments-shard-k.csv``. Every shard is a complete, independent population.

    Returns:
        The truth dict (see ``docs/generator.md``): ``parameters``, ``definitions``,
        ``true_effect_relative``, ``itt_conversion_lift``, ``att_conversion_lift``,
        ``observed_conversion_lift`` (keyed by window days as strings), ``conversion_rates``,
        ``counts``, ``experiment``, ``model_versions`` and ``injected`` (rows written,
        duplicates and malformed rows per kind, per source).
    """
    if users < 1 or days < 1:
        raise ValueError("users and days must be >= 1")
    if not 0.0 <= holdout_share <= 1.0:
        raise ValueError("holdout_share must be in [0, 1]")
    if effect <= -1.0:
        raise ValueError("effect must be > -1")
    for name, share in (("malformed_share", malformed_share), ("duplicate_share", duplicate_share)):
        if not 0.0 <= share < 1.0:
            raise ValueError(f"{name} must be in [0, 1)")
    settings = settings or load_settings()
    out_dir = Path(out_dir)
    if shard < 0 or (shard and not (out_dir / "truth.json").is_file()):
        raise ValueError("shard k > 0 adds to a landing folder that shard 0 wrote")
    if shard == 0:
        _prepare_out_dir(out_dir, overwrite)
    # shard 0 keeps the historical stream (byte-identical files); shard k its own
    stream = np.random.SeedSequence(seed, spawn_key=(shard,)) if shard else seed
    rng = np.random.Generator(np.random.PCG64(stream))

    sim = _simulate(
        rng,
        users=users,
        days=days,
        start_date=start_date,
        effect=effect,
        holdout_share=holdout_share,
        unobserved_confounding=unobserved_confounding,
        settings=settings,
    )
    sim["shard"] = shard
    if shard:
        sim["user_ids"] = _user_ids(users, first=shard * users)
    truth_core = _truth(sim, settings)
    injected = _write_all(
        out_dir,
        rng,
        sim,
        seed=seed,
        malformed_share=malformed_share,
        duplicate_share=duplicate_share,
    )
    end_date = start_date + timedelta(days=days - 1)
    truth: dict[str, Any] = {
        "generator": f"attribution.generate v{GENERATOR_VERSION}",
        "parameters": {
            "users": users,
            "days": days,
            "seed": seed,
            "start_date": start_date.isoformat(),
            "end_date": end_date.isoformat(),
            "effect": effect,
            "holdout_share": holdout_share,
            "malformed_share": malformed_share,
            "duplicate_share": duplicate_share,
            "unobserved_confounding": unobserved_confounding,
            "windows_days": list(settings.windows_days),
            "marketplaces": dict(settings.marketplaces),
        },
        "definitions": _DEFINITIONS,
        "true_effect_relative": effect,
        **truth_core,
        "experiment": {
            "experiment_id": EXPERIMENT_ID,
            "arms": {
                "treatment": int(users - sim["holdout"].sum()),
                "holdout": int(sim["holdout"].sum()),
            },
        },
        "model_versions": {
            "versions": list(MODEL_VERSIONS),
            "rollout_start": _iso(sim["rollout_start"]),
            "rollout_end": _iso(sim["rollout_start"] + _ROLLOUT_DAYS * _MS_DAY),
        },
        "injected": injected,
    }
    truth["parameters"]["shard"] = shard
    name = f"truth-shard-{shard}.json" if shard else "truth.json"
    (out_dir / name).write_text(json.dumps(truth, indent=2, sort_keys=True) + "\n")
    return truth


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _prepare_out_dir(out_dir: Path, overwrite: bool) -> None:
    ours = [out_dir / name for name in SOURCES] + [out_dir / "truth.json"]
    if out_dir.exists() and any(out_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out_dir} is not empty (pass overwrite=True to replace)")
        for path in ours:
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)


def _simulate(
    rng: np.random.Generator,
    *,
    users: int,
    days: int,
    start_date: date,
    effect: float,
    holdout_share: float,
    unobserved_confounding: float,
    settings: Settings,
) -> dict[str, Any]:
    """All simulated arrays (users, visitor-days, visits, sessions, events, orders, lines)."""
    start_ms = int(
        datetime(start_date.year, start_date.month, start_date.day, tzinfo=UTC).timestamp() * 1000
    )
    end_ms = start_ms + days * _MS_DAY
    codes = list(settings.marketplaces)
    currencies = sorted(set(settings.marketplaces.values()) | {"USD"})
    mkt_currency = np.array([currencies.index(settings.marketplaces[c]) for c in codes])
    cat = _catalogue(rng, users)
    fx = _fx_table(rng, currencies, days)

    # users
    weights = np.array([_MARKETPLACE_WEIGHTS.get(c, 0.05) for c in codes])
    u_mkt = rng.choice(len(codes), size=users, p=weights / weights.sum()).astype(np.int64)
    log_act = rng.normal(0.0, _ACTIVITY_SIGMA, users)
    propensity = _PROPENSITY_RHO * log_act / _ACTIVITY_SIGMA + math.sqrt(
        1 - _PROPENSITY_RHO**2
    ) * rng.standard_normal(users)
    app_share = rng.beta(2.0, 1.5, users)
    holdout = rng.random(users) < holdout_share
    q = np.minimum(_VISIT_BASE * np.exp(_VISIT_ELASTICITY * log_act), _VISIT_CAP)

    # visitor-days: loop over days (vectorised over users), sorted by (day, user)
    vd_user_parts, vd_day_parts = [], []
    for d in range(days):
        weekday = (start_date + timedelta(days=d)).weekday()
        factor = 1.12 if weekday >= 5 else 1.0
        hit = np.flatnonzero(rng.random(users, dtype=np.float32) < q * factor)
        vd_user_parts.append(hit.astype(np.int32))
        vd_day_parts.append(np.full(len(hit), d, dtype=np.int32))
    vd_user = np.concatenate(vd_user_parts).astype(np.int64)
    vd_day = np.concatenate(vd_day_parts).astype(np.int64)
    del vd_user_parts, vd_day_parts
    n_vd = len(vd_user)
    day_start = start_ms + vd_day * _MS_DAY
    shift = np.array([_DIURNAL_SHIFT.get(c, 0.0) for c in codes])[u_mkt[vd_user]]
    frac = (rng.beta(2.4, 2.0, n_vd) + shift) % 1.0
    first_visit = day_start + _FIRST_VISIT_LO_MS + (frac * _FIRST_VISIT_SPAN_MS).astype(np.int64)
    day_end = day_start + _MS_DAY

    # visits: the first visit plus extra visits later the same day (strictly increasing,
    # dropped past midnight)
    n_extra = np.minimum(rng.poisson(_EXTRA_VISITS_MEAN, n_vd), 5)
    extra_vd = np.repeat(np.arange(n_vd), n_extra)
    extra_gap = (1000 + rng.exponential(_EXTRA_VISIT_GAP_MEAN_MS, len(extra_vd))).astype(np.int64)
    extra_ts = first_visit[extra_vd] + _segmented_cumsum(extra_gap, n_extra)
    in_day = extra_ts < day_end[extra_vd]
    extra_vd, extra_ts = extra_vd[in_day], extra_ts[in_day]
    visit_vd = np.concatenate([np.arange(n_vd), extra_vd])
    visit_ts = np.concatenate([first_visit, extra_ts])
    visit_user = vd_user[visit_vd]
    r = rng.random(len(visit_vd))
    visit_channel = np.where(
        r < _VOICE_SHARE_VISITS,
        _VOICE,
        np.where(rng.random(len(visit_vd)) < app_share[visit_user], _APP, _WEB),
    )

    # purchase draws with common random numbers, drawn up front for every visitor-day
    m_a, m_b, m_c = _MISSION_LOGIT
    mission = rng.random(n_vd) < _sigmoid(m_a + m_b * propensity + m_c * log_act)[vd_user]
    p_mission, p_browse, p_b = _PURCHASE_LOGIT
    p0 = _sigmoid(np.where(mission, p_mission, p_browse) + (p_b * propensity)[vd_user])
    p_with = np.minimum(p0 * (1.0 + effect), _P_CAP)
    u_buy = rng.random(n_vd)
    same_day = rng.random(n_vd) < _SAME_DAY_SHARE
    lag = np.where(
        same_day,
        rng.exponential(_SAME_DAY_MEAN_MS, n_vd),
        rng.exponential(_TAIL_MEAN_MS, n_vd),
    ).astype(np.int64)
    ts_none = _ceil_seconds(first_visit + lag)  # orders carry whole seconds, never before
    buy_none = (u_buy < p0) & (ts_none < end_ms)  # the first visit of their day
    # the lines a visitor-day's order would have, and each line's final status
    vd_nlines = 1 + _draw_pmf(rng, np.array(_LINES_PMF), n_vd)
    vd_line0 = np.cumsum(vd_nlines) - vd_nlines
    r = rng.random(int(vd_nlines.sum()))
    line_status = np.where(
        r < _CANCEL_SHARE,
        _CANCELLED,
        np.where(r < _CANCEL_SHARE + _RETURN_SHARE, _RETURNED, _PLACED),
    )
    # an order counts as placed while one of its lines is (as the product's int_orders does)
    stays_placed = (
        np.add.reduceat((line_status == _PLACED).astype(np.int64), vd_line0) > 0
        if n_vd
        else np.zeros(0, dtype=bool)
    )

    # engagement: a function of what the retailer observes before the visitor-day (the
    # pre-period covariates of attribution.lift), computed day by day because past orders
    # depend on past engagement. Drawn for every user in world A (holdout users included, with
    # their own world-A orders); realised only for treatment users.
    static_logit, pre_visit_days, tenure_days = _engagement_base(
        vd_user, vd_day, u_mkt, visit_channel[:n_vd], codes, days
    )
    if unobserved_confounding:
        static_logit = static_logit + unobserved_confounding * mission
    latent_eng = np.zeros(n_vd, dtype=bool)
    pre_orders = np.zeros(n_vd, dtype=np.int64)
    anchor_with = first_visit.copy()
    first_nev, first_gaps, first_start = [], [], []
    day_lo = np.searchsorted(vd_day, np.arange(days + 1), side="left")
    origin = start_ms - (_PRE_DAYS + 2) * _MS_DAY
    order_keys = np.zeros(0, dtype=np.int64)  # world-A placed orders so far, (user, ms) keys
    coef_orders = _ENGAGE_LOGIT[2]
    for d in range(days):
        lo, hi = int(day_lo[d]), int(day_lo[d + 1])
        if lo == hi:
            continue
        user_d = vd_user[lo:hi]
        key = user_d * _KEY_SHIFT + (first_visit[lo:hi] - origin)
        pre = np.searchsorted(order_keys, key, side="left") - np.searchsorted(
            order_keys, key - _PRE_DAYS * _MS_DAY, side="left"
        )
        pre_orders[lo:hi] = pre
        eng = rng.random(hi - lo) < _sigmoid(static_logit[lo:hi] + coef_orders * np.log1p(pre))
        latent_eng[lo:hi] = eng
        # the first session of an engaged day: its end anchors the lag of that day's order
        idx = lo + np.flatnonzero(eng)
        nev = 1 + _draw_pmf(rng, np.array(_SESSION_EVENTS_PMF), len(idx))
        gaps = _event_gaps(rng, nev)
        start = first_visit[idx] + (_MS_MIN + rng.random(len(idx)) * 19 * _MS_MIN).astype(np.int64)
        anchor_with[idx] = start + _segment_sums(gaps, nev)
        first_nev.append(nev)
        first_gaps.append(gaps)
        first_start.append(start)
        ts_a = np.where(eng, _ceil_seconds(anchor_with[lo:hi] + lag[lo:hi]), ts_none[lo:hi])
        buy_a = (u_buy[lo:hi] < np.where(eng, p_with[lo:hi], p0[lo:hi])) & (ts_a < end_ms)
        buy_a &= stays_placed[lo:hi]
        new = np.sort(user_d[buy_a] * _KEY_SHIFT + (ts_a[buy_a] - origin))
        order_keys = np.insert(order_keys, np.searchsorted(order_keys, new), new)
    real_eng = latent_eng & ~holdout[vd_user]

    # sessions on latent-engaged days (the first session of each was drawn above)
    eng_vd = np.flatnonzero(latent_eng)
    extra_mean = _EXTRA_SESSIONS_MEAN * np.exp(_SESSION_ELASTICITY * log_act[vd_user[eng_vd]])
    n_sess = 1 + np.minimum(rng.poisson(extra_mean), 5)
    s_vd = np.repeat(eng_vd, n_sess)
    s_k = _positions(n_sess)
    n_s = len(s_vd)
    first = s_k == 0
    s_nev = np.empty(n_s, dtype=np.int64)
    s_nev[first] = np.concatenate([np.zeros(0, np.int64), *first_nev])
    s_nev[~first] = 1 + _draw_pmf(rng, np.array(_SESSION_EVENTS_PMF), int((~first).sum()))
    e_sess = np.repeat(np.arange(n_s), s_nev)
    e_pos = _positions(s_nev)
    e_first = first[e_sess]
    gaps = np.empty(len(e_sess), dtype=np.int64)
    gaps[e_first] = np.concatenate([np.zeros(0, np.int64), *first_gaps])
    gaps[~e_first] = _event_gaps(rng, s_nev[~first])
    e_off = _segmented_cumsum(gaps, s_nev)
    s_dur = e_off[np.cumsum(s_nev) - 1]
    prev_dur = np.concatenate([[0], s_dur[:-1]])
    later_gap = (
        prev_dur + _SESSION_GAP_MIN_MS + rng.exponential(_SESSION_GAP_EXTRA_MEAN_MS, n_s)
    ).astype(np.int64)
    inc = later_gap
    inc[first] = np.concatenate([np.zeros(0, np.int64), *first_start])
    s_start = _segmented_cumsum(inc, n_sess)
    s_end = s_start + s_dur
    keep = s_end <= day_end[s_vd] - _DAY_END_MARGIN_MS
    if not keep[first].all():  # pragma: no cover - guaranteed by the first-visit window
        raise AssertionError("first session crosses midnight")
    if not np.array_equal(anchor_with[eng_vd], s_end[first]):  # pragma: no cover
        raise AssertionError("first sessions do not match their order anchors")
    ev_keep = np.repeat(keep, s_nev)
    s_vd, s_k, s_start, s_end, s_nev = (
        s_vd[keep],
        s_k[keep],
        s_start[keep],
        s_end[keep],
        s_nev[keep],
    )
    n_s = len(s_vd)
    e_sess = np.repeat(np.arange(n_s), s_nev)
    e_off = e_off[ev_keep]
    e_pos = e_pos[ev_keep]
    e_ts = s_start[e_sess] + e_off
    s_user = vd_user[s_vd]
    r = rng.random(n_s)
    s_channel = np.where(
        r < _VOICE_SHARE_SESSIONS, _VOICE, np.where(rng.random(n_s) < app_share[s_user], _APP, _WEB)
    )
    rollout_start = start_ms + int(_ROLLOUT_START_FRACTION * days * _MS_DAY)
    s_v2 = rng.random(n_s) < _rollout_share(s_start, rollout_start)
    cat_mass = cat.cat_hi - cat.cat_lo
    s_cat = _draw_pmf(rng, cat_mass, n_s)
    n_e = len(e_sess)
    types = list(EVENT_TYPES)
    first_pmf = np.array([_EVENT_FIRST[t] for t in types])
    later_pmf = np.array([_EVENT_LATER[t] for t in types])
    e_type = np.where(e_pos == 0, _draw_pmf(rng, first_pmf, n_e), _draw_pmf(rng, later_pmf, n_e))
    e_nprod = np.zeros(n_e, dtype=np.int64)
    for t_idx, name in enumerate(types):
        sel = np.flatnonzero(e_type == t_idx)
        e_nprod[sel] = _draw_pmf(rng, np.array(_EVENT_PRODUCTS[name]), len(sel))
    p_event = np.repeat(np.arange(n_e), e_nprod)
    # mostly products of the session's category, some from the whole catalogue
    in_cat = np.flatnonzero(rng.random(len(p_event)) < 0.85)
    anywhere = np.setdiff1d(np.arange(len(p_event)), in_cat, assume_unique=True)
    p_prod = np.empty(len(p_event), dtype=np.int64)
    p_prod[in_cat] = _draw_products(rng, cat, len(in_cat), s_cat[e_sess[p_event[in_cat]]])
    p_prod[anywhere] = _draw_products(rng, cat, len(anywhere), None)

    # orders: realised world (treatment engagement realised, holdout never engages)
    ts_with = _ceil_seconds(anchor_with + lag)
    buy_with = (u_buy < p_with) & (ts_with < end_ms)
    ts_real = np.where(real_eng, ts_with, ts_none)
    buy_real = np.where(real_eng, buy_with, buy_none)
    o_vd = np.flatnonzero(buy_real)
    o_vd = o_vd[np.lexsort((o_vd, ts_real[o_vd]))]  # orders numbered by placement time
    n_o = len(o_vd)
    o_nlines = vd_nlines[o_vd]
    l_order = np.repeat(np.arange(n_o), o_nlines)
    l_no = _positions(o_nlines) + 1
    n_l = len(l_order)
    l_vd = o_vd[l_order]
    l_status = line_status[vd_line0[l_vd] + l_no - 1]
    # surfaced products of each visitor-day: product draws are grouped by visitor-day
    p_vd = s_vd[e_sess[p_event]]
    seg_lo = np.searchsorted(p_vd, l_vd, side="left")
    seg_hi = np.searchsorted(p_vd, l_vd, side="right")
    use_surfaced = real_eng[l_vd] & (seg_hi > seg_lo) & (rng.random(n_l) < _SURFACED_LINE_SHARE)
    pick = seg_lo + (rng.random(n_l) * (seg_hi - seg_lo)).astype(np.int64)
    pick = np.minimum(pick, max(len(p_prod) - 1, 0))
    popular = _draw_products(rng, cat, n_l, None)
    l_product = np.where(use_surfaced, p_prod[pick] if len(p_prod) else popular, popular)
    l_qty = 1 + _draw_pmf(rng, np.array(_QUANTITY_PMF), n_l)
    l_ts = ts_real[l_vd]
    l_user = vd_user[l_vd]
    l_mkt = u_mkt[l_user]
    l_cur = mkt_currency[l_mkt]
    l_day = (l_ts - start_ms) // _MS_DAY
    price_factor = np.array([_PRICE_FACTOR.get(c, 1.0) for c in codes])[l_mkt]
    unit_cents = np.maximum(
        np.rint(cat.price_usd[l_product] * price_factor / fx[l_cur, l_day] * 100), 1
    ).astype(np.int64)
    l_cents = unit_cents * l_qty
    upd_delay = np.where(
        l_status == _CANCELLED,
        _MS_MIN + rng.random(n_l) * (_CANCEL_MAX_MS - _MS_MIN),
        _RETURN_MIN_MS + rng.random(n_l) * (_RETURN_MAX_MS - _RETURN_MIN_MS),
    ).astype(np.int64)
    l_updated = _ceil_seconds(l_ts + upd_delay)

    return {
        "start_ms": start_ms,
        "end_ms": end_ms,
        "days": days,
        "codes": codes,
        "currencies": currencies,
        "mkt_currency": mkt_currency,
        "catalogue": cat,
        "fx": fx,
        "rollout_start": rollout_start,
        "u_mkt": u_mkt,
        "user_ids": _user_ids(users),
        "holdout": holdout,
        "vd_user": vd_user,
        "vd_day": vd_day,
        "first_visit": first_visit,
        "latent_eng": latent_eng,
        "pre_visit_days": pre_visit_days,
        "pre_orders": pre_orders,
        "tenure_days": tenure_days,
        "mission": mission,
        "real_eng": real_eng,
        "p0": p0,
        "p_with": p_with,
        "u_buy": u_buy,
        "ts_none": ts_none,
        "ts_with": ts_with,
        "buy_none": buy_none,
        "buy_with": buy_with,
        "ts_real": ts_real,
        "buy_real": buy_real,
        "stays_placed": stays_placed,
        "visit_user": visit_user,
        "visit_ts": visit_ts,
        "visit_channel": visit_channel,
        "s_vd": s_vd,
        "s_user": s_user,
        "s_start": s_start,
        "s_channel": s_channel,
        "s_v2": s_v2,
        "e_sess": e_sess,
        "e_ts": e_ts,
        "e_type": e_type,
        "e_nprod": e_nprod,
        "p_prod": p_prod,
        "o_vd": o_vd,
        "l_order": l_order,
        "l_no": l_no,
        "l_user": l_user,
        "l_ts": l_ts,
        "l_mkt": l_mkt,
        "l_cur": l_cur,
        "l_product": l_product,
        "l_qty": l_qty,
        "l_cents": l_cents,
        "l_status": l_status,
        "l_updated": l_updated,
    }


def _truth(sim: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """ITT, ATT and naive lifts per window, conversion rates and counts (see _DEFINITIONS)."""
    users = len(sim["holdout"])
    start_ms = sim["start_ms"]
    vd_user, first_visit = sim["vd_user"], sim["first_visit"]
    latent_eng, real_eng = sim["latent_eng"], sim["real_eng"]
    # assigned_at: first visit, else the period start
    assigned = np.full(users, start_ms, dtype=np.int64)
    first_of_user = np.full(users, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_of_user, vd_user, first_visit)
    active = first_of_user < np.iinfo(np.int64).max
    assigned[active] = first_of_user[active]

    # converting orders: those that stay placed (a line neither cancelled nor returned), as the
    # product counts conversions; the order contents are common to every world
    placed = sim["stays_placed"]
    buy_none, ts_none = sim["buy_none"] & placed, sim["ts_none"]
    # world A (everyone's latent engagement realised) and world N (nobody engages)
    never = np.iinfo(np.int64).max
    ts_a = np.where(latent_eng, sim["ts_with"], ts_none)
    buy_a = np.where(latent_eng, sim["buy_with"], sim["buy_none"]) & placed
    first_a = np.full(users, never, dtype=np.int64)
    first_n = np.full(users, never, dtype=np.int64)
    np.minimum.at(first_a, vd_user[buy_a], ts_a[buy_a])
    np.minimum.at(first_n, vd_user[buy_none], ts_none[buy_none])

    # realised orders of each user, keyed (user, ms) for window counts
    origin = start_ms - _MS_DAY
    buy_real, ts_real = sim["buy_real"] & placed, sim["ts_real"]
    keys = np.sort(vd_user[buy_real] * _KEY_SHIFT + (ts_real[buy_real] - origin))
    vd_key = vd_user * _KEY_SHIFT + (first_visit - origin)

    itt, att, observed = {}, {}, {}
    rates: dict[str, Any] = {"itt": {}, "att": {}, "observed": {}}
    last_day = sim["days"] - 1
    assigned_day = (assigned - start_ms) // _MS_DAY
    for w in settings.windows_days:
        span = w * _MS_DAY
        # complete windows only, as the product counts them: index date + W <= last day
        u_in = assigned_day + w <= last_day
        n_users = int(u_in.sum())
        conv_a = int((first_a[u_in] <= assigned[u_in] + span).sum())
        conv_n = int((first_n[u_in] <= assigned[u_in] + span).sum())
        itt[str(w)] = _lift(conv_a, conv_n)
        rates["itt"][str(w)] = {
            "users": n_users,
            "world_assistant": _rate(conv_a, n_users),
            "world_none": _rate(conv_n, n_users),
        }
        vd_in = sim["vd_day"] + w <= last_day
        key_in = vd_key[vd_in]
        count = np.searchsorted(keys, key_in + span, side="right") - np.searchsorted(
            keys, key_in, side="left"
        )
        converted = count > 0
        eng_in = real_eng[vd_in]
        e_cnt = count[eng_in]
        eng_idx = np.flatnonzero(real_eng & vd_in)
        own_in = buy_real[eng_idx] & (ts_real[eng_idx] <= first_visit[eng_idx] + span)
        cf_in = buy_none[eng_idx] & (ts_none[eng_idx] <= first_visit[eng_idx] + span)
        conv_real = int((e_cnt > 0).sum())
        conv_cf = int(((e_cnt - own_in + cf_in) > 0).sum())
        n_eng = len(eng_idx)
        att[str(w)] = _lift(conv_real, conv_cf)
        rates["att"][str(w)] = {
            "engaged_visitor_days": n_eng,
            "realised": _rate(conv_real, n_eng),
            "counterfactual": _rate(conv_cf, n_eng),
        }
        n_not = int((~eng_in).sum())
        conv_eng, conv_not = int(converted[eng_in].sum()), int(converted[~eng_in].sum())
        observed[str(w)] = _lift(conv_eng * n_not, conv_not * n_eng) if n_eng else None
        rates["observed"][str(w)] = {
            "engaged": _rate(conv_eng, n_eng),
            "not_engaged": _rate(conv_not, n_not),
        }

    e_real = ~sim["holdout"][sim["s_user"]][sim["e_sess"]]
    counts = {
        "users": users,
        "active_users": int(active.sum()),
        "holdout_users": int(sim["holdout"].sum()),
        "visitor_days": len(vd_user),
        "visits": len(sim["visit_ts"]),
        "engaged_visitor_days": int(real_eng.sum()),
        "latent_engaged_visitor_days": int(latent_eng.sum()),
        "sessions": int((~sim["holdout"][sim["s_user"]]).sum()),
        "interactions": int(e_real.sum()),
        "orders": len(sim["o_vd"]),
        "order_lines": len(sim["l_order"]),
        "products": len(sim["catalogue"].product_ids),
    }
    return {
        "itt_conversion_lift": itt,
        "att_conversion_lift": att,
        "observed_conversion_lift": observed,
        "conversion_rates": rates,
        "counts": counts,
    }


# --- writing ---------------------------------------------------------------------------------


def _dup_and_malformed(
    rng: np.random.Generator,
    n_valid: int,
    duplicate_share: float,
    malformed_share: float,
    n_kinds: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows chosen for duplication, malformed templates and the kind of each malformed row."""
    n_dup = round(duplicate_share * n_valid)
    n_bad = round(malformed_share * n_valid) if n_valid else 0
    dup = (
        np.sort(rng.choice(n_valid, size=n_dup, replace=False)) if n_dup else np.zeros(0, np.int64)
    )
    templates = rng.integers(0, n_valid, n_bad) if n_bad else np.zeros(0, np.int64)
    kinds = np.arange(n_bad) % n_kinds
    return dup.astype(np.int64), templates.astype(np.int64), kinds.astype(np.int64)


def _write_all(
    out_dir: Path,
    rng: np.random.Generator,
    sim: dict[str, Any],
    *,
    seed: int,
    malformed_share: float,
    duplicate_share: float,
) -> dict[str, Any]:
    injected: dict[str, Any] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures: list[Any] = []
        injected["interactions"] = _write_interactions(
            out_dir, rng, sim, pool, futures, seed, malformed_share, duplicate_share
        )
        injected["orders"] = _write_orders(out_dir, rng, sim, pool, futures, malformed_share)
        injected["visits"] = _write_visits(
            out_dir, rng, sim, pool, futures, malformed_share, duplicate_share
        )
        injected["assignments"] = _write_assignments(out_dir, sim)
        if sim["shard"] == 0:  # one FX table and one catalogue serve every shard
            injected["fx_rates"] = _write_fx(out_dir, sim)
            injected["products"] = _write_products(out_dir, sim)
        for future in futures:
            future.result()
    return injected


def _injected_entry(
    rows_written: int, valid: int, dups: int, kinds: tuple[str, ...], bad_kinds: np.ndarray
) -> dict[str, Any]:
    per_kind = {k: int((bad_kinds == i).sum()) for i, k in enumerate(kinds)}
    return {
        "rows_written": rows_written,
        "valid_rows": valid,
        "duplicates": dups,
        "malformed": per_kind,
        "malformed_total": len(bad_kinds),
    }


def _submit(
    pool: ThreadPoolExecutor, futures: list[Any], path: Path, data: bytes, gz: bool
) -> None:
    # Keep at most a few files in flight so that memory stays bounded.
    while len([f for f in futures if not f.done()]) > 3:
        next(f for f in futures if not f.done()).result()
    futures.append(pool.submit(_write_bytes, path, data, gz))


def _part(out_dir: Path, source: str, day_ms: int, ext: str, shard: int = 0) -> Path:
    day = datetime.fromtimestamp(day_ms / 1000, tz=UTC).date().isoformat()
    return out_dir / source / f"dt={day}" / f"part-{shard:05d}.{ext}"


def _id_salt(seed: int, shard: int) -> int:
    """The salt of session and event ids: the seed for shard 0, another value per shard."""
    return seed + shard * 1_000_003


def _write_interactions(
    out_dir: Path,
    rng: np.random.Generator,
    sim: dict[str, Any],
    pool: ThreadPoolExecutor,
    futures: list[Any],
    seed: int,
    malformed_share: float,
    duplicate_share: float,
) -> dict[str, Any]:
    kinds = _MALFORMED_KINDS["interactions"]
    start_ms, days = sim["start_ms"], sim["days"]
    holdout = sim["holdout"]
    e_sess, s_user = sim["e_sess"], sim["s_user"]
    real = np.flatnonzero(~holdout[s_user[e_sess]])  # realised events (treatment users)
    n_valid = len(real)
    ev_day = (sim["e_ts"][real] - start_ms) // _MS_DAY
    dup, templates, bad_kind = _dup_and_malformed(
        rng, n_valid, duplicate_share, malformed_share, len(kinds)
    )
    next_day = (rng.random(len(dup)) < 0.5) & (ev_day[dup] < days - 1)
    # arrival orders rows within a file: a same-file duplicate arrives minutes to hours after
    # its original, a next-day one in a re-sent batch during the next day's first six hours
    dup_delay = rng.exponential(_MS_HOUR, len(dup)).astype(np.int64)
    resend = (ev_day[dup] + 1) * _MS_DAY + start_ms + (rng.random(len(dup)) * 6 * _MS_HOUR)
    base_ts = sim["e_ts"][real]
    # rows: (valid-row index, id index, file day, arrival, kind): kind -1 ok, -2 dup, >=0 malformed
    row_src = np.concatenate([np.arange(n_valid), dup, templates])
    row_id = np.concatenate([real, real[dup], sim["e_ts"].shape[0] + np.arange(len(templates))])
    row_day = np.concatenate([ev_day, ev_day[dup] + next_day, ev_day[templates]])
    row_arrival = np.concatenate(
        [
            base_ts,
            np.where(next_day, resend.astype(np.int64), base_ts[dup] + dup_delay),
            base_ts[templates],
        ]
    )
    row_kind = np.concatenate([np.full(n_valid, -1), np.full(len(dup), -2), bad_kind]).astype(
        np.int64
    )
    order = np.lexsort((row_id, row_arrival, row_day))
    row_src, row_id, row_day, row_kind = (
        row_src[order],
        row_id[order],
        row_day[order],
        row_kind[order],
    )

    # per-event attributes in flat arrays (global event index)
    codes = sim["codes"]
    offsets = np.array([_TS_OFFSET_MIN.get(c, 0) for c in codes], dtype=np.int64)
    u_mkt = sim["u_mkt"]
    user_ids = sim["user_ids"]
    product_ids = sim["catalogue"].product_ids
    p_start = np.concatenate([[0], np.cumsum(sim["e_nprod"])])
    salt = _id_salt(seed, sim["shard"])
    session_ids = _session_ids(np.arange(len(s_user)), salt)
    types = pa.array([*EVENT_TYPES, _BAD_EVENT_TYPE])
    channels = pa.array([*CHANNELS, _BAD_CHANNEL])
    markets = pa.array([*codes, _BAD_MARKETPLACE])
    models = pa.array(list(MODEL_VERSIONS))
    kind_idx = {k: i for i, k in enumerate(kinds)}
    columns = SOURCES["interactions"].column_names

    for d in range(days):
        sl = _day_slices(row_day, d)
        src, ids, kind = row_src[sl], row_id[sl], row_kind[sl]
        ev = real[src]
        sess = e_sess[ev]
        user = s_user[sess]
        mkt = u_mkt[user].copy()
        mkt[kind == kind_idx["unknown_marketplace"]] = len(codes)
        channel = sim["s_channel"][sess].copy()
        channel[kind == kind_idx["bad_channel"]] = len(CHANNELS)
        etype = sim["e_type"][ev].copy()
        etype[kind == kind_idx["bad_event_type"]] = len(EVENT_TYPES)
        ts = _ts_arrow(
            sim["e_ts"][ev],
            offsets[u_mkt[user]],
            millis=True,
            unparseable=kind == kind_idx["unparseable_ts"],
            future=kind == kind_idx["future_ts"],
        )
        uid = _null_where(user_ids.take(pa.array(user)), kind == kind_idx["missing_user_id"])
        sid = session_ids.take(pa.array(sess))
        nprod = sim["e_nprod"][ev]
        list_offsets = np.concatenate([[0], np.cumsum(nprod)]).astype(np.int32)
        flat = np.repeat(p_start[ev], nprod) + _positions(nprod)
        plist = pa.ListArray.from_arrays(
            pa.array(list_offsets), product_ids.take(pa.array(sim["p_prod"][flat]))
        )
        table = pa.table(
            {
                "event_id": _event_ids(ids, salt * 2 + 1),
                "user_id": uid,
                "ts": ts,
                # only the app sends a session id; web and voice rely on the 30-minute rule
                "session_id": _null_where(sid, sim["s_channel"][sess] != _APP),
                "marketplace": markets.take(pa.array(mkt)),
                "channel": channels.take(pa.array(channel)),
                "event_type": types.take(pa.array(etype)),
                "product_ids": plist,
                "model_version": models.take(pa.array(sim["s_v2"][sess].astype(np.int64))),
            }
        ).select(list(columns))
        buf = io.BytesIO()
        pl.from_arrow(table).write_ndjson(buf)
        _submit(
            pool,
            futures,
            _part(out_dir, "interactions", start_ms + d * _MS_DAY, "jsonl.gz", sim["shard"]),
            buf.getvalue(),
            True,
        )

    n_dup = len(dup)
    entry = _injected_entry(n_valid + n_dup + len(templates), n_valid, n_dup, kinds, bad_kind)
    entry["duplicates_in_next_day_file"] = int(next_day.sum())
    return entry


def _user_ids(users: int, first: int = 0) -> pa.Array:
    index = np.arange(first, first + users)
    return pa.array(_base36_ids(index, "A", 10, 387_420_489_001, 1_234_567_890_123))


def _session_ids(index: np.ndarray, seed: int) -> pa.Array:
    h = _hex_matrix(_mix64(index.astype(np.uint64) ^ np.uint64((seed * 31 + 17) % 2**63)))
    out = np.empty((len(index), 18), dtype=np.uint8)
    out[:, :2] = np.frombuffer(b"s-", dtype=np.uint8)
    out[:, 2:] = h
    return _bytes_to_arrow(out)


def _order_ids(index: np.ndarray, prefix: np.ndarray) -> pl.Series:
    """Amazon-style ``PPP-NNNNNNN-NNNNNNN`` ids, unique through an affine bijection mod 1e14."""
    if len(index) and int(index.max()) >= 10**8:
        raise ValueError("too many orders for this id scheme")
    x = (
        index.astype(np.int64) * np.int64(48_271_098_113) + np.int64(61_803_398_874_989)
    ) % np.int64(10**14)
    hi = pl.Series(x // 10**7).cast(pl.String).str.zfill(7)
    lo = pl.Series(x % 10**7).cast(pl.String).str.zfill(7)
    return (pl.Series(prefix).cast(pl.String) + "-" + hi + "-" + lo).alias("order_id")


def _write_orders(
    out_dir: Path,
    rng: np.random.Generator,
    sim: dict[str, Any],
    pool: ThreadPoolExecutor,
    futures: list[Any],
    malformed_share: float,
) -> dict[str, Any]:
    kinds = _MALFORMED_KINDS["orders"]
    start_ms, days, end_ms = sim["start_ms"], sim["days"], sim["end_ms"]
    n_lines = len(sim["l_order"])
    status = sim["l_status"]
    upd = np.flatnonzero(status != _PLACED)
    # valid rows: every placed line, then one update row per cancelled/returned line
    v_line = np.concatenate([np.arange(n_lines), upd])
    v_status = np.concatenate([np.full(n_lines, _PLACED), status[upd]])
    v_updated = np.concatenate([sim["l_ts"], sim["l_updated"][upd]])
    n_valid = len(v_line)
    # malformed rows copy a placed line (new order id, line 1) and break one rule
    n_bad = round(malformed_share * n_valid) if n_lines else 0
    templates = rng.integers(0, n_lines, n_bad) if n_bad else np.zeros(0, np.int64)
    bad_kind = np.arange(n_bad, dtype=np.int64) % len(kinds)
    n_orders = len(sim["o_vd"])
    row_line = np.concatenate([v_line, templates])
    row_status = np.concatenate([v_status, np.full(len(templates), _PLACED)])
    row_updated = np.concatenate([v_updated, sim["l_ts"][templates]])
    row_kind = np.concatenate([np.full(n_valid, -1), bad_kind]).astype(np.int64)
    row_order_idx = np.concatenate([sim["l_order"][v_line], n_orders + np.arange(len(templates))])
    if sim["shard"]:  # shard k's orders take ids from k * users: at most `users` of them
        if n_orders + len(templates) > len(sim["holdout"]):
            raise ValueError("a shard has more orders than users: its order ids would overlap")
        row_order_idx = row_order_idx + sim["shard"] * len(sim["holdout"])
    row_line_no = np.concatenate([sim["l_no"][v_line], np.ones(len(templates), np.int64)])
    row_day = (row_updated - start_ms) // _MS_DAY
    order = np.lexsort((row_line_no, row_order_idx, row_updated, row_day))
    row_line, row_status, row_updated = row_line[order], row_status[order], row_updated[order]
    row_kind, row_order_idx, row_line_no, row_day = (
        row_kind[order],
        row_order_idx[order],
        row_line_no[order],
        row_day[order],
    )

    codes, currencies = sim["codes"], sim["currencies"]
    user_ids = sim["user_ids"]
    prefix_of_mkt = np.array([_ORDER_PREFIX.get(c, 900 + i) for i, c in enumerate(codes)])
    product_ids = sim["catalogue"].product_ids
    markets = pa.array([*codes, _BAD_MARKETPLACE])
    currency_names = pa.array([*currencies, _BAD_CURRENCY])
    statuses = pa.array([*ORDER_STATUSES, _BAD_STATUS])
    kind_idx = {k: i for i, k in enumerate(kinds)}
    columns = SOURCES["orders"].column_names
    last_day = int(row_day.max()) if len(row_day) else days - 1

    late_partitions = 0
    for d in range(max(days, last_day + 1)):
        sl = _day_slices(row_day, d)
        if d >= days and sl.start == sl.stop:
            continue
        late_partitions += d >= days
        line, kind = row_line[sl], row_kind[sl]
        user = sim["l_user"][line]
        mkt = sim["l_mkt"][line].copy()
        mkt[kind == kind_idx["unknown_marketplace"]] = len(codes)
        cur = sim["l_cur"][line].copy()
        cur[kind == kind_idx["bad_currency"]] = len(currencies)
        stat = row_status[sl].copy()
        stat[kind == kind_idx["bad_status"]] = len(ORDER_STATUSES)
        qty = sim["l_qty"][line].copy()
        qty[kind == kind_idx["quantity_zero"]] = 0
        cents = sim["l_cents"][line].copy()
        neg = kind == kind_idx["negative_amount"]
        cents[neg] = -cents[neg]
        bad_ts, fut_ts = kind == kind_idx["unparseable_ts"], kind == kind_idx["future_ts"]
        ts, updated = (
            pl.from_arrow(_ts_arrow(t, millis=False, unparseable=bad_ts, future=fut_ts))
            for t in (sim["l_ts"][line], row_updated[sl])
        )
        uid = _null_where(user_ids.take(pa.array(user)), kind == kind_idx["missing_user_id"])
        frame = pl.DataFrame(
            {
                "order_id": _order_ids(row_order_idx[sl], prefix_of_mkt[sim["l_mkt"][line]]),
                "line_no": pl.Series(row_line_no[sl], dtype=pl.Int64),
                "user_id": pl.from_arrow(uid),
                "ts": ts,
                "marketplace": pl.from_arrow(markets.take(pa.array(mkt))),
                "product_id": pl.from_arrow(product_ids.take(pa.array(sim["l_product"][line]))),
                "quantity": pl.Series(qty, dtype=pl.Int64),
                "amount": _amount_strings(cents),
                "currency": pl.from_arrow(currency_names.take(pa.array(cur))),
                "status": pl.from_arrow(statuses.take(pa.array(stat))),
                "updated_at": updated,
            }
        ).select(list(columns))
        buf = io.BytesIO()
        frame.write_csv(buf)
        _submit(
            pool,
            futures,
            _part(out_dir, "orders", start_ms + d * _MS_DAY, "csv.gz", sim["shard"]),
            buf.getvalue(),
            True,
        )

    entry = _injected_entry(n_valid + len(templates), n_valid, 0, kinds, bad_kind)
    entry["placed_lines"] = n_lines
    entry["orders"] = n_orders
    entry["updates"] = {
        "cancelled": int((status == _CANCELLED).sum()),
        "returned": int((status == _RETURNED).sum()),
    }
    entry["updates_after_period"] = int((sim["l_updated"][upd] >= end_ms).sum())
    entry["partitions_after_period"] = late_partitions
    return entry


def _write_visits(
    out_dir: Path,
    rng: np.random.Generator,
    sim: dict[str, Any],
    pool: ThreadPoolExecutor,
    futures: list[Any],
    malformed_share: float,
    duplicate_share: float,
) -> dict[str, Any]:
    del pool, futures  # parquet writing is already multi-threaded in Arrow
    kinds = _MALFORMED_KINDS["visits"]
    start_ms, days = sim["start_ms"], sim["days"]
    n_valid = len(sim["visit_ts"])
    dup, templates, bad_kind = _dup_and_malformed(
        rng, n_valid, duplicate_share, malformed_share, len(kinds)
    )
    row_src = np.concatenate([np.arange(n_valid), dup, templates])
    row_kind = np.concatenate([np.full(n_valid + len(dup), -1), bad_kind]).astype(np.int64)
    row_ts = sim["visit_ts"][row_src]
    row_day = (row_ts - start_ms) // _MS_DAY
    order = np.lexsort((row_kind, row_src, row_ts, row_day))
    row_src, row_kind, row_ts, row_day = (
        row_src[order],
        row_kind[order],
        row_ts[order],
        row_day[order],
    )
    codes = sim["codes"]
    user_ids = sim["user_ids"]
    markets = pa.array([*codes, _BAD_MARKETPLACE])
    channels = pa.array([*CHANNELS, _BAD_CHANNEL])
    kind_idx = {k: i for i, k in enumerate(kinds)}
    future_shift = int(datetime(2099, 1, 1, tzinfo=UTC).timestamp() * 1000) - int(
        datetime(datetime.fromtimestamp(start_ms / 1000, tz=UTC).year, 1, 1, tzinfo=UTC).timestamp()
        * 1000
    )
    for d in range(days):
        sl = _day_slices(row_day, d)
        src, kind = row_src[sl], row_kind[sl]
        user = sim["visit_user"][src]
        mkt = sim["u_mkt"][user].copy()
        mkt[kind == kind_idx["unknown_marketplace"]] = len(codes)
        channel = sim["visit_channel"][src].copy()
        channel[kind == kind_idx["bad_channel"]] = len(CHANNELS)
        ts = row_ts[sl].copy()
        ts[kind == kind_idx["future_ts"]] += future_shift
        uid = _null_where(user_ids.take(pa.array(user)), kind == kind_idx["missing_user_id"])
        table = pa.table(
            {
                "user_id": uid,
                "ts": pa.array(ts, type=pa.int64()).cast(pa.timestamp("ms")),
                "marketplace": markets.take(pa.array(mkt)),
                "channel": channels.take(pa.array(channel)),
            }
        ).select(list(SOURCES["visits"].column_names))
        _write_parquet(
            _part(out_dir, "visits", start_ms + d * _MS_DAY, "parquet", sim["shard"]), table
        )
    return _injected_entry(n_valid + len(dup) + len(templates), n_valid, len(dup), kinds, bad_kind)


def _write_fx(out_dir: Path, sim: dict[str, Any]) -> dict[str, Any]:
    currencies, fx, start_ms = sim["currencies"], sim["fx"], sim["start_ms"]
    for d in range(sim["days"]):
        day = datetime.fromtimestamp((start_ms + d * _MS_DAY) / 1000, tz=UTC).date().isoformat()
        lines = ["date,currency,rate_to_usd"]
        lines += [f"{day},{c},{fx[i, d]:.8f}" for i, c in enumerate(currencies)]
        _write_bytes(
            _part(out_dir, "fx_rates", start_ms + d * _MS_DAY, "csv"),
            ("\n".join(lines) + "\n").encode(),
            False,
        )
    rows = sim["days"] * len(currencies)
    return _injected_entry(rows, rows, 0, (), np.zeros(0))


def _write_assignments(out_dir: Path, sim: dict[str, Any]) -> dict[str, Any]:
    users = len(sim["holdout"])
    assigned = np.full(users, sim["start_ms"], dtype=np.int64)
    first = np.full(users, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, sim["vd_user"], sim["first_visit"])
    active = first < np.iinfo(np.int64).max
    assigned[active] = first[active]
    arms = pa.array(list(ARMS))
    frame = pl.DataFrame(
        {
            "user_id": pl.from_arrow(sim["user_ids"]),
            "experiment_id": pl.Series([EXPERIMENT_ID] * users, dtype=pl.String),
            "arm": pl.from_arrow(
                arms.take(pa.array(np.where(sim["holdout"], _HOLDOUT, _TREATMENT)))
            ),
            "assigned_at": pl.from_arrow(_ts_arrow(assigned, millis=True)),
        }
    )
    buf = io.BytesIO()
    frame.select(list(SOURCES["assignments"].column_names)).write_csv(buf)
    name = f"assignments-shard-{sim['shard']}.csv" if sim["shard"] else "assignments.csv"
    _write_bytes(out_dir / "assignments" / name, buf.getvalue(), False)
    return _injected_entry(users, users, 0, (), np.zeros(0))


def _write_products(out_dir: Path, sim: dict[str, Any]) -> dict[str, Any]:
    cat: _Catalogue = sim["catalogue"]
    table = pa.table(
        {
            "product_id": cat.product_ids,
            "brand": pa.array(cat.brand_names[cat.product_brand]),
            "category": pa.array(np.array(_CATEGORIES)[cat.product_category]),
        }
    )
    _write_parquet(out_dir / "products" / "products.parquet", table)
    n = len(cat.product_ids)
    return _injected_entry(n, n, 0, (), np.zeros(0))
