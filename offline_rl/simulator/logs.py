"""Writes the simulated shop's raw logs into the landing zone.

Layout: ``<home>/landing/<dataset>/date=YYYY-MM-DD/part-g<YYYYMMDD>.parquet`` where the
folder's date is the UTC date of each row's event time and ``g<YYYYMMDD>`` names the day
whose sessions produced it (a session that crosses midnight writes into two folders).
Each file is written to a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from offline_rl.data.schemas import CLICKSTREAM, SOURCES
from offline_rl.simulator.ads import generate_ads
from offline_rl.simulator.cart import generate_cart
from offline_rl.simulator.inventory import generate_inventory
from offline_rl.simulator.pricing import generate_pricing
from offline_rl.simulator.recommendation import (
    RecommendationSimulator,
    SessionLog,
    simulate_sessions,
)
from offline_rl.simulator.scenarios import Scenario, get_scenario
from offline_rl.simulator.serving import SHOP, LoggingPolicy, logging_policies
from offline_rl.simulator.world import DEVICES, World, make_world

if TYPE_CHECKING:
    from offline_rl.paths import Location

EVENTS_PER_SESSION = 8.0
"""Rough clickstream events per session, to turn ``events_per_day`` into sessions."""

_HOUR_WEIGHTS = np.array(
    [1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3, 3.5, 3.5, 4, 4.5, 4, 3.5, 3.5, 4, 4.5, 5.5, 6.5, 7, 6,
     4, 2], dtype=float,
)

DatasetGenerator = Callable[..., dict[str, pl.DataFrame]]
"""(world, scenario, day, rng, events_per_day, logging=SHOP) -> {dataset name: rows}; the
decisions are served by ``logging`` (the shop's own rule by default)."""


def session_start_times(day: dt.date, n: int, rng: np.random.Generator) -> np.ndarray:
    """Session start times (epoch microseconds, UTC) with a diurnal profile."""
    hours = rng.choice(24, size=n, p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())
    seconds = hours * 3600 + rng.random(n) * 3600
    midnight = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp()
    return ((midnight + seconds) * 1e6).astype(np.int64)


def generate_clickstream(
    world: World, scenario: Scenario, day: dt.date, rng: np.random.Generator, events_per_day: int,
    logging: LoggingPolicy = SHOP,
) -> dict[str, pl.DataFrame]:
    """Sessions of one day under the recommendation behaviour policy, as clickstream events."""
    sim = logging.wrap(RecommendationSimulator(world, scenario.recommendation))
    n_sessions = max(1, int(round(events_per_day / EVENTS_PER_SESSION)))
    users = rng.integers(0, world.users.n_users, n_sessions)
    starts = session_start_times(day, n_sessions, rng)
    log = simulate_sessions(sim, users, rng)
    return {CLICKSTREAM.name: clickstream_events(world, log, day, starts, rng, logging.name)}


def clickstream_events(
    world: World, log: SessionLog, day: dt.date, starts: np.ndarray, rng: np.random.Generator,
    policy_version: str | None = None,
) -> pl.DataFrame:
    """Turns simulated sessions into clickstream rows (page view, impression, click, purchase).

    ``starts`` holds each session's start time in epoch microseconds; impressions name
    ``policy_version`` as the policy that chose them.
    """
    n = log.action.shape[0]
    gaps = rng.integers(15_000_000, 120_000_000, n)  # 15 s to 2 min between pages
    first = np.r_[True, log.session[1:] != log.session[:-1]]
    offset = np.cumsum(gaps) - np.maximum.accumulate(np.where(first, np.cumsum(gaps), 0))
    page_ts = starts[log.session] + offset
    click_delay = rng.integers(2_000_000, 20_000_000, n)
    buy_delay = rng.integers(20_000_000, 90_000_000, n)
    seg = world.users.segment[log.user]
    dev = np.asarray(DEVICES)[world.users.device[log.user]]
    cat = world.catalogue.category_id[log.item]
    base = pl.DataFrame(
        {
            "session_id": pl.Series(log.session, dtype=pl.Int64),
            "user": pl.Series(log.user, dtype=pl.Int64),
            "user_segment": pl.Series(seg, dtype=pl.Int32),
            "device": dev,
            "page": pl.Series(log.page, dtype=pl.Int32),
            "item_id": pl.Series(log.item, dtype=pl.Int64),
            "category_id": pl.Series(cat, dtype=pl.Int32),
            "behavior_prob": log.behavior_prob.astype(np.float64),
            "click": log.click,
            "buy": log.buy,
            "price": log.price.astype(np.float64),
            "margin": (log.price - world.catalogue.cost[log.item]).astype(np.float64),
            "page_ts": page_ts,
            "click_ts": page_ts + click_delay,
            "buy_ts": page_ts + click_delay + buy_delay,
        }
    ).with_columns(
        session_id=pl.format("{}-{}", pl.lit(day.strftime("%Y%m%d")),
                             pl.col("session_id").cast(pl.String).str.zfill(6)),
        user_id=pl.format("u{}", pl.col("user").cast(pl.String).str.zfill(5)),
    )
    prefix = pl.format("{}-p{}", pl.col("session_id"), pl.col("page"))
    null_f = pl.lit(None, dtype=pl.Float64)
    common = ["session_id", "user_id", "user_segment", "device", "page"]
    page_view = base.select(
        *common, event_id=pl.format("{}-view", prefix), event_ts=pl.col("page_ts"),
        event_type=pl.lit("page_view"), slot=pl.lit(None, dtype=pl.Int32),
        item_id=pl.lit(None, dtype=pl.Int64), category_id=pl.lit(None, dtype=pl.Int32),
        behavior_prob=null_f, ref_event_id=pl.lit(None, dtype=pl.String), price=null_f,
        margin=null_f,
    )
    impression = base.select(
        *common, event_id=pl.format("{}-imp", prefix), event_ts=pl.col("page_ts") + 500_000,
        event_type=pl.lit("impression"), slot=pl.lit(0, dtype=pl.Int32),
        item_id="item_id", category_id="category_id", behavior_prob="behavior_prob",
        ref_event_id=pl.lit(None, dtype=pl.String), price=null_f, margin=null_f,
    )
    click = base.filter("click").select(
        *common, event_id=pl.format("{}-click", prefix), event_ts=pl.col("click_ts"),
        event_type=pl.lit("click"), slot=pl.lit(0, dtype=pl.Int32),
        item_id="item_id", category_id="category_id", behavior_prob=null_f,
        ref_event_id=pl.format("{}-imp", prefix), price=null_f, margin=null_f,
    )
    purchase = base.filter("buy").select(
        *common, event_id=pl.format("{}-buy", prefix), event_ts=pl.col("buy_ts"),
        event_type=pl.lit("purchase"), slot=pl.lit(0, dtype=pl.Int32),
        item_id="item_id", category_id="category_id", behavior_prob=null_f,
        ref_event_id=pl.format("{}-imp", prefix), price="price", margin="margin",
    )
    events = (
        pl.concat([page_view, impression, click, purchase])
        .with_columns(pl.col("event_ts").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))
        .sort("event_ts", "event_id")
    )
    return CLICKSTREAM.conform(events, policy_version)


GENERATORS: dict[str, DatasetGenerator] = {
    "recommendation": generate_clickstream,
    "cart": generate_cart,
    "inventory": generate_inventory,
    "ads": generate_ads,
    "pricing": generate_pricing,
}
"""One generator per log source, keyed by the decision domain its decisions belong to; each
returns rows for its datasets."""


@dataclass(frozen=True)
class LandingSummary:
    """What ``write_landing`` wrote: the days, rows per dataset and every file's path."""

    home: Path
    days: list[dt.date]
    rows: dict[str, int]
    written: list[Path]
    served: dict[str, str] = field(default_factory=dict)
    """Per domain, what served its decisions: ``shop_rule`` or the export version."""

    @property
    def files(self) -> int:
        return len(self.written)


def write_landing(
    home: Path,
    *,
    days: int,
    start: dt.date,
    seed: int = 0,
    events_per_day: int = 40_000,
    scenario: str = "default",
    serve: Location | str | PathLike[str] | None = None,
) -> LandingSummary:
    """Simulates ``days`` days from ``start`` and writes every source's landing files.

    With ``serve`` (an export root), each domain's decisions are served by the version its
    ``latest`` names, through the export's serving head, and the logs record that head's
    propensities; a domain with nothing promoted is served by the shop's rule. A day's
    customers do not depend on what serves it (the same seed gives the same sessions, carts,
    SKUs and campaigns); what they do next does.
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    if events_per_day < 1:
        raise ValueError("events_per_day must be at least 1")
    scen = get_scenario(scenario)
    world = make_world(scen.world)
    landing = Path(home) / "landing"
    rows: dict[str, int] = {name: 0 for name in SOURCES}
    written: list[Path] = []
    day_list = [start + dt.timedelta(days=i) for i in range(days)]
    policies = logging_policies(list(GENERATORS), serve)
    for day in day_list:
        seq = np.random.SeedSequence([seed, day.toordinal()])
        for (domain, gen), child in zip(GENERATORS.items(), seq.spawn(len(GENERATORS)),
                                        strict=True):
            for name, frame in gen(world, scen, day, np.random.default_rng(child),
                                   events_per_day, logging=policies[domain]).items():
                schema = SOURCES[name]
                dated = frame.with_columns(_date=pl.col(schema.time_column).dt.date())
                for (event_date,), part in dated.group_by("_date", maintain_order=True):
                    folder = landing / name / f"date={event_date:%Y-%m-%d}"
                    folder.mkdir(parents=True, exist_ok=True)
                    target = folder / f"part-g{day:%Y%m%d}.parquet"
                    tmp = folder / f".{target.name}.tmp"
                    part.drop("_date").write_parquet(tmp)
                    tmp.replace(target)
                    written.append(target)
                rows[name] += frame.height
    return LandingSummary(home=Path(home), days=day_list, rows=rows, written=written,
                          served={d: p.name for d, p in policies.items()})
