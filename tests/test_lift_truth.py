"""The lift methods against the generator's planted truth (truth.json).

Fast: one seed at 20,000 users x 30 days. Slow (``-m slow``, run in CI): 30 seeds at 4,000 users x
30 days, reporting the interval coverage of the experiment (ITT) and of the adjusted (ATT) lift.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from attribution.config import Settings
from attribution.generate import generate_landing
from attribution.lift import pooled_lift_by_method
from attribution.pipeline import run_pipeline
from attribution.warehouse import connect

WINDOWS = ("1", "7", "14")


def run_seed(tmp: Path, users: int, days: int, seed: int) -> tuple[dict, dict]:
    """Generate, run the pipeline and return (truth, {(method, window): (lift, low, high)})."""
    landing, warehouse = tmp / f"landing-{seed}", tmp / f"wh-{seed}.duckdb"
    truth = generate_landing(landing, users=users, days=days, seed=seed)
    run_pipeline(Settings(), landing_dir=landing, warehouse_path=warehouse, expectations=False)
    con = connect(warehouse, read_only=True)
    got = {}
    for w in WINDOWS:
        frame = pooled_lift_by_method(con, int(w))
        for row in frame.iter_rows(named=True):
            got[(row["method"], w)] = (row["lift"], row["ci_low"], row["ci_high"])
    con.close()
    return truth, got


@pytest.fixture(scope="module")
def one_seed(tmp_path_factory):
    return run_seed(tmp_path_factory.mktemp("truth"), 20_000, 30, 1)


@pytest.mark.parametrize("w", WINDOWS)
def test_experiment_interval_covers_the_itt(one_seed, w):
    truth, got = one_seed
    _, low, high = got[("experiment", w)]
    assert low < truth["itt_conversion_lift"][w] < high


@pytest.mark.parametrize("w", WINDOWS)
def test_adjusted_is_closer_to_the_att_than_observed(one_seed, w):
    truth, got = one_seed
    att = truth["att_conversion_lift"][w]
    assert abs(got[("adjusted", w)][0] - att) < abs(got[("observed", w)][0] - att)
    # the product's observed lift agrees with the generator's naive comparison
    _, low, high = got[("observed", w)]
    assert low < truth["observed_conversion_lift"][w] < high


@pytest.mark.xfail(
    reason="the generator's main confounder is a per-day latent 'mission' intent that no "
    "pre-period covariate observes: weighting on pre-period behaviour cannot remove it "
    "(see docs/lift.md, 'Known limits')",
    strict=False,
)
@pytest.mark.parametrize("w", WINDOWS)
def test_adjusted_interval_covers_the_att(one_seed, w):
    truth, got = one_seed
    _, low, high = got[("adjusted", w)]
    assert low < truth["att_conversion_lift"][w] < high


def _seed_job(args: tuple[str, int]) -> tuple[int, dict, dict]:
    tmp, seed = args
    truth, got = run_seed(Path(tmp), 4_000, 30, seed)
    return seed, truth, got


@pytest.mark.slow
def test_interval_coverage_over_30_seeds(tmp_path):
    seeds = list(range(101, 131))
    with ProcessPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(_seed_job, [(str(tmp_path), s) for s in seeds]))
    coverage = {}
    for method, key in (("experiment", "itt_conversion_lift"), ("adjusted", "att_conversion_lift")):
        for w in WINDOWS:
            hits = [
                got[(method, w)][1] < truth[key][w] < got[(method, w)][2]
                for _, truth, got in results
                if got.get((method, w)) and got[(method, w)][1] is not None
            ]
            coverage[(method, w)] = (sum(hits), len(hits))
    for (method, w), (hit, n) in coverage.items():
        print(f"coverage {method} W={w}: {hit}/{n} = {hit / n:.2f}")
    for w in WINDOWS:
        hit, n = coverage[("experiment", w)]
        assert n == len(seeds)
        assert hit / n >= 0.8, f"experiment coverage at W={w}: {hit}/{n}"
