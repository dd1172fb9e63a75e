"""Fixtures of the ingestion tests."""

import datetime as dt

import polars as pl
import pytest

from offline_rl.data.schemas import CLICKSTREAM

DAY = dt.date(2026, 10, 1)


@pytest.fixture(scope="module")
def clean() -> pl.DataFrame:
    """About 300 valid clickstream events of DAY (with purchases, so prices and margins)."""
    import numpy as np

    from offline_rl.simulator.recommendation import SIMULATION, generate_clickstream
    from offline_rl.simulator.scenarios import get_scenario
    from offline_rl.simulator.world import make_world

    scen = get_scenario("default")
    frame = generate_clickstream(make_world(scen.world), SIMULATION.config, DAY,
                                 np.random.default_rng(3),
                                 400)[CLICKSTREAM.name]
    frame = frame.filter(pl.col("event_ts").dt.date() == DAY)
    assert frame.filter(pl.col("event_type") == "purchase").height > 0
    return frame
