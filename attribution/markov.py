"""The ``data_driven`` attribution model: Markov-chain removal effects and Shapley values.

Pure functions (no I/O). The input is a set of *journeys*, given as a polars DataFrame or as a
sequence of mappings / tuples with:

* ``path``: the journey's touch types in time order (a non-empty list of non-empty strings);
* ``converted``: whether the journey ended in a conversion;
* ``value_usd``: the value of the conversion (0 for a journey that did not convert);
* ``count`` (optional, default 1): how many identical journeys the row stands for, for
  pre-aggregated input. ``value_usd`` is then the *total* value of those journeys, so splitting a
  row of count c and value v into c rows of value v / c changes nothing.

Markov model (Anderl et al. 2016): every journey is a walk ``start -> touch_1 -> ... -> touch_n ->
conversion | null``. Transition counts over all journeys are normalised per row into a transition
matrix; ``conversion`` and ``null`` are absorbing. With ``order=k`` the states are tuples of the
last k touches (a journey's first states are the shorter prefixes ``(t1,)``, ``(t1, t2)``, ...).
The probability of ending in ``conversion`` from ``start`` is solved exactly from the absorbing
chain, ``(I - Q) h = r`` with ``numpy.linalg.solve`` (no simulation). The *removal effect* of a
touch type is ``1 - P(conversion without it) / P(conversion)``, where removing a touch type sends
every transition into a state containing it to ``null``.

What the product reports (``markov_attribution``) is a **global allocation**: each touch type's
share is ``removal_effect / sum(removal_effects)``, and its attributed conversions and revenue are
the totals of all journeys times that share. The peer package ``mam`` (``MAM.run_markov``) computes
the same removal effects but then spreads *each journey's* value over that journey's own touches
in proportion to their shares, so a touch type gets nothing from journeys it is absent from; its
per-type totals therefore differ from ours (both sum to the total value).

Shapley model (``shapley_attribution``): the "simplified Shapley value" of Zhao et al. (2018) over
touch types, with characteristic function v(S) = conversions (or value) of the converting journeys
whose *set* of touch types is a subset of S, computed exactly by enumerating subsets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
import polars as pl

START = "start"
CONVERSION = "conversion"
NULL = "null"
RESERVED_STATES: frozenset[str] = frozenset({START, CONVERSION, NULL})

State = str | tuple[str, ...]

MARKOV_SCHEMA: dict[str, Any] = {
    "touch_type": pl.String,
    "removal_effect": pl.Float64,
    "share": pl.Float64,
    "attributed_conversions": pl.Float64,
    "attributed_revenue_usd": pl.Float64,
}
SHAPLEY_SCHEMA: dict[str, Any] = {
    "touch_type": pl.String,
    "shapley_conversions": pl.Float64,
    "shapley_share": pl.Float64,
    "shapley_revenue_usd": pl.Float64,
}


@dataclass(frozen=True)
class Journey:
    """One validated journey (or ``count`` identical ones with total value ``value_usd``)."""

    path: tuple[str, ...]
    converted: bool
    value_usd: float
    count: float = 1.0


@dataclass(frozen=True)
class TransitionMatrix:
    """Transition counts and probabilities between the states of a Markov chain of ``order``.

    ``states`` are ``start``, the touch states in sorted order (strings for order 1, tuples of the
    last k touches for order k > 1), then the absorbing ``conversion`` and ``null``. Row i of
    ``probabilities`` is row i of ``counts`` divided by its sum (absorbing states loop onto
    themselves with probability 1; a state with no outgoing count, only ``start`` on empty input,
    keeps a zero row).
    """

    states: tuple[State, ...]
    counts: np.ndarray
    probabilities: np.ndarray
    order: int

    def index(self, state: State) -> int:
        """Return the row/column of ``state``."""
        return self.states.index(state)

    def probability(self, source: State, target: State) -> float:
        """Return P(next state = target | current state = source)."""
        return float(self.probabilities[self.index(source), self.index(target)])

    @property
    def touch_states(self) -> tuple[State, ...]:
        """The transient states other than ``start``."""
        return self.states[1:-2]

    def to_frame(self) -> pl.DataFrame:
        """Return the non-zero transitions as rows (from_state, to_state, count, probability)."""
        names = [_state_name(state) for state in self.states]
        rows = [
            (names[i], names[j], float(self.counts[i, j]), float(self.probabilities[i, j]))
            for i in range(len(names))
            for j in range(len(names))
            if self.probabilities[i, j] != 0
        ]
        return pl.DataFrame(
            rows,
            schema={
                "from_state": pl.String,
                "to_state": pl.String,
                "count": pl.Float64,
                "probability": pl.Float64,
            },
            orient="row",
        )


def _state_name(state: State) -> str:
    return state if isinstance(state, str) else " > ".join(state)


# --------------------------------------------------------------------------------------------
# input
# --------------------------------------------------------------------------------------------


def journeys_from(paths: Any) -> list[Journey]:
    """Return validated journeys from a polars DataFrame or a sequence of mappings / tuples.

    Raises ``ValueError`` on an empty path, a touch that is not a non-empty string or is named
    like a reserved state (start, conversion, null), a negative or non-finite value, a value on a
    journey that did not convert, or a count that is not > 0.
    """
    if isinstance(paths, pl.DataFrame):
        missing = {"path", "converted", "value_usd"} - set(paths.columns)
        if missing:
            raise ValueError(f"journeys need the columns {sorted(missing)}")
        columns = ["path", "converted", "value_usd"]
        if "count" in paths.columns:
            columns.append("count")
        records: Iterable[Any] = paths.select(columns).iter_rows()
    else:
        records = paths
    return [_journey(record) for record in records]


def _journey(record: Any) -> Journey:
    if isinstance(record, Journey):
        path, converted, value, count = (
            record.path,
            record.converted,
            record.value_usd,
            record.count,
        )
    elif isinstance(record, Mapping):
        path = record["path"]
        converted = record["converted"]
        value = record.get("value_usd", 0.0)
        count = record.get("count", 1)
    elif isinstance(record, Sequence) and len(record) in (3, 4):
        path, converted, value = record[0], record[1], record[2]
        count = record[3] if len(record) == 4 else 1
    else:
        raise ValueError(f"a journey is (path, converted, value_usd[, count]), got {record!r}")
    if isinstance(path, str) or path is None or len(path) == 0:
        raise ValueError(f"a journey's path is a non-empty list of touch types, got {path!r}")
    for touch in path:
        if not isinstance(touch, str) or not touch:
            raise ValueError(f"touch types are non-empty strings, got {touch!r} in {path!r}")
        if touch in RESERVED_STATES:
            raise ValueError(f"{touch!r} is a reserved state name, not a touch type")
    if converted is None:
        raise ValueError(f"converted is missing for path {path!r}")
    value = 0.0 if value is None else float(value)
    count = 1.0 if count is None else float(count)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"value_usd must be finite and >= 0, got {value!r}")
    if not converted and value != 0:
        raise ValueError(f"a journey that did not convert has value 0, got {value!r}")
    if not math.isfinite(count) or count <= 0:
        raise ValueError(f"count must be > 0, got {count!r}")
    return Journey(tuple(path), bool(converted), value, count)


def _touch_types(journeys: Sequence[Journey]) -> list[str]:
    return sorted({touch for journey in journeys for touch in journey.path})


def _states_of(path: tuple[str, ...], order: int) -> list[State]:
    if order == 1:
        return list(path)
    return [tuple(path[max(0, i + 1 - order) : i + 1]) for i in range(len(path))]


def _check_order(order: int) -> None:
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise ValueError(f"order must be an integer >= 1, got {order!r}")


# --------------------------------------------------------------------------------------------
# Markov chain
# --------------------------------------------------------------------------------------------


def transition_matrix(paths: Any, order: int = 1) -> TransitionMatrix:
    """Return the transition counts and probabilities of the order-``order`` chain of ``paths``.

    Each journey contributes ``count`` to every transition of its walk ``start -> s_1 -> ... ->
    s_n -> conversion | null``. Repeated touches (A, A) are kept as self-transitions: they do not
    change any absorption probability (a self-loop only rescales the rest of its row).
    """
    _check_order(order)
    journeys = journeys_from(paths)
    walks: list[tuple[list[State], float]] = []
    touch_states: set[State] = set()
    for journey in journeys:
        states = _states_of(journey.path, order)
        touch_states.update(states)
        end = CONVERSION if journey.converted else NULL
        walks.append(([START, *states, end], journey.count))
    ordered = sorted(touch_states, key=lambda s: (0, s) if isinstance(s, str) else (len(s), s))
    states: tuple[State, ...] = (START, *ordered, CONVERSION, NULL)
    position = {state: i for i, state in enumerate(states)}
    size = len(states)
    counts = np.zeros((size, size), dtype=float)
    for walk, count in walks:
        for source, target in pairwise(walk):
            counts[position[source], position[target]] += count
    probabilities = _normalise_rows(counts)
    probabilities[size - 2, size - 2] = 1.0  # conversion is absorbing
    probabilities[size - 1, size - 1] = 1.0  # null is absorbing
    return TransitionMatrix(states, counts, probabilities, order)


def _normalise_rows(counts: np.ndarray) -> np.ndarray:
    sums = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, sums, out=np.zeros_like(counts), where=sums > 0)


def _absorption_probability(probabilities: np.ndarray) -> float:
    """P(reach conversion from start) for a matrix laid out [start, touch..., conversion, null]."""
    n_transient = probabilities.shape[0] - 2
    q = probabilities[:n_transient, :n_transient]
    r = probabilities[:n_transient, n_transient]  # column of `conversion`
    h = np.linalg.solve(np.identity(n_transient) - q, r)
    return float(h[0])


def conversion_probability(matrix: TransitionMatrix) -> float:
    """Return P(the chain started in ``start`` is absorbed in ``conversion``), solved exactly.

    With Q the transient-to-transient block and r the transient-to-conversion column, the
    absorption probabilities h solve (I - Q) h = r (fundamental matrix N = (I - Q)^-1, h = N r).
    Every transient state of an observed chain reaches an absorbing state, so I - Q is regular.
    """
    return _absorption_probability(matrix.probabilities)


def _probability_without(matrix: TransitionMatrix, touch: str) -> float:
    """P(conversion) after removing every state that contains ``touch`` (incoming -> null)."""
    removed = [
        i
        for i, state in enumerate(matrix.states)
        if i not in (0, len(matrix.states) - 2, len(matrix.states) - 1)
        and (state == touch if isinstance(state, str) else touch in state)
    ]
    counts = matrix.counts.copy()
    null = len(matrix.states) - 1
    counts[:, null] += counts[:, removed].sum(axis=1)
    gone = set(removed)
    keep = [i for i in range(len(matrix.states)) if i not in gone]
    counts = counts[np.ix_(keep, keep)]
    probabilities = _normalise_rows(counts)
    return _absorption_probability(probabilities)


def _removal_effects(matrix: TransitionMatrix, touch_types: Sequence[str]) -> dict[str, float]:
    base = conversion_probability(matrix)
    if base <= 0:
        return dict.fromkeys(touch_types, 0.0)
    effects: dict[str, float] = {}
    for touch in touch_types:
        effect = 1.0 - _probability_without(matrix, touch) / base
        # removal can only lower P(conversion); clip rounding noise of the order of 1e-16
        effects[touch] = min(1.0, max(0.0, effect))
    return effects


def removal_effects(paths: Any, order: int = 1) -> dict[str, float]:
    """Return {touch type: removal effect} (sorted by touch type), solved exactly.

    removal effect = 1 - P(conversion without the touch type) / P(conversion); every state that
    contains the touch type is removed and the transitions into it go to ``null``. Effects lie in
    [0, 1]. With no converting journey (P(conversion) = 0) every effect is 0. A touch type seen
    only in journeys that did not convert has effect 0 when its states cannot reach a converting
    state, but not in general: in [C, A] -> null with A also converting elsewhere, the chain
    forgets that this walk failed and C gets a positive effect (Markov chains are memoryless).
    """
    _check_order(order)
    journeys = journeys_from(paths)
    matrix = transition_matrix(journeys, order)
    return _removal_effects(matrix, _touch_types(journeys))


def markov_attribution(paths: Any, order: int = 1) -> pl.DataFrame:
    """Return the data-driven (Markov) attribution per touch type, as the product reports it.

    Columns: touch_type, removal_effect, share = effect / sum(effects), attributed_conversions =
    total conversions x share, attributed_revenue_usd = total value x share. This is a *global
    allocation*: all journeys' conversions and value are split by the global shares. (``mam``'s
    ``run_markov`` instead splits each journey's value over that journey's own touches in
    proportion to their shares; see the module docstring.) With no converting journey every share
    and attribution is 0; with no journey the frame is empty. Sorted by touch_type.
    """
    _check_order(order)
    journeys = journeys_from(paths)
    touch_types = _touch_types(journeys)
    if not touch_types:
        return pl.DataFrame(schema=MARKOV_SCHEMA)
    effects = _removal_effects(transition_matrix(journeys, order), touch_types)
    total_effect = math.fsum(effects.values())
    conversions = math.fsum(j.count for j in journeys if j.converted)
    value = math.fsum(j.value_usd for j in journeys if j.converted)
    rows = []
    for touch in touch_types:
        share = effects[touch] / total_effect if total_effect > 0 else 0.0
        rows.append((touch, effects[touch], share, conversions * share, value * share))
    return pl.DataFrame(rows, schema=MARKOV_SCHEMA, orient="row")


# --------------------------------------------------------------------------------------------
# Shapley
# --------------------------------------------------------------------------------------------


def shapley_attribution(paths: Any, max_touch_types: int = 10) -> pl.DataFrame:
    """Return exact Shapley values per touch type (Zhao et al. 2018, "simplified Shapley").

    Players: the touch types of the converting journeys. Characteristic functions, for a set S
    of touch types: v_conv(S) = conversions of the converting journeys whose set of touch types
    is a subset of S, and v_value(S) the same for their value. The Shapley value
    phi_i = sum over S not containing i of |S|! (n - |S| - 1)! / n! (v(S + i) - v(S)) is computed
    by enumerating all 2^n subsets (``ValueError`` if n > ``max_touch_types``).

    Columns: touch_type, shapley_conversions (phi of v_conv; they sum to the total conversions),
    shapley_share (shapley_conversions / total conversions; sums to 1), shapley_revenue_usd (phi
    of v_value; sums to the total value). Touch types seen only in journeys that did not convert
    are null players: 0. With no converting journey everything is 0; with no journey the frame is
    empty. Order and repetition of touches within a journey do not matter here.
    (Because v is a sum of unanimity games, phi_i equals the sum over converting journeys
    containing i of value / number of distinct touch types; the enumeration is kept as the
    definition and the tests check that identity.)
    """
    journeys = journeys_from(paths)
    touch_types = _touch_types(journeys)
    if not touch_types:
        return pl.DataFrame(schema=SHAPLEY_SCHEMA)
    converting = [j for j in journeys if j.converted]
    players = sorted({touch for journey in converting for touch in journey.path})
    n = len(players)
    if n > max_touch_types:
        raise ValueError(
            f"exact Shapley values enumerate 2^n subsets: {n} touch types in converting journeys "
            f"exceed max_touch_types={max_touch_types}"
        )
    bit = {player: 1 << i for i, player in enumerate(players)}
    exact_conv: dict[int, list[float]] = {}
    exact_value: dict[int, list[float]] = {}
    for journey in converting:
        mask = 0
        for touch in journey.path:
            mask |= bit[touch]
        exact_conv.setdefault(mask, []).append(journey.count)
        exact_value.setdefault(mask, []).append(journey.value_usd)
    size = 1 << n
    v_conv = np.zeros(size)
    v_value = np.zeros(size)
    for mask in exact_conv:
        v_conv[mask] = math.fsum(exact_conv[mask])
        v_value[mask] = math.fsum(exact_value[mask])
    masks = np.arange(size)
    # zeta transform: v(S) = sum of the exact-set totals over all subsets of S
    for i in range(n):
        has_i = masks[(masks >> i) & 1 == 1]
        v_conv[has_i] += v_conv[has_i ^ (1 << i)]
        v_value[has_i] += v_value[has_i ^ (1 << i)]
    popcount = np.array([m.bit_count() for m in range(size)], dtype=int)
    weight = np.array(
        [math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)]
    )
    phi_conv: dict[str, float] = {}
    phi_value: dict[str, float] = {}
    for i, player in enumerate(players):
        without_i = masks[(masks >> i) & 1 == 0]
        w = weight[popcount[without_i]]
        phi_conv[player] = float(np.dot(w, v_conv[without_i | (1 << i)] - v_conv[without_i]))
        phi_value[player] = float(np.dot(w, v_value[without_i | (1 << i)] - v_value[without_i]))
    total_conv = math.fsum(j.count for j in converting)
    rows = []
    for touch in touch_types:
        conv = phi_conv.get(touch, 0.0)
        share = conv / total_conv if total_conv > 0 else 0.0
        rows.append((touch, conv, share, phi_value.get(touch, 0.0)))
    return pl.DataFrame(rows, schema=SHAPLEY_SCHEMA, orient="row")
