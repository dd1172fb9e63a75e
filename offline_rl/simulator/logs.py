"""Writes the simulated shop's raw logs into the landing zone.

Layout: ``<home>/landing/<dataset>/date=YYYY-MM-DD/part-g<YYYYMMDD>.parquet`` where the
folder's date is the UTC date of each row's event time and ``g<YYYYMMDD>`` names the day
whose sessions produced it (a session that crosses midnight writes into two folders).
Each file is written to a temporary name and renamed, so a reader never sees half a file.

This module knows no domain: :func:`offline_rl.shop.write_landing` hands it every registered
domain's :class:`~offline_rl.simulator.base.Simulation` and landing schemas.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from offline_rl.data.schemas import SourceSchema
from offline_rl.simulator.base import Simulation
from offline_rl.simulator.scenarios import get_scenario
from offline_rl.simulator.serving import logging_policies
from offline_rl.simulator.world import make_world

if TYPE_CHECKING:
    from offline_rl.paths import Location


@dataclass(frozen=True)
class LandingSummary:
    """What ``write_logs`` wrote: the days, rows per dataset and every file's path."""

    home: Path
    days: list[dt.date]
    rows: dict[str, int]
    written: list[Path]
    served: dict[str, str] = field(default_factory=dict)
    """Per domain, what served its decisions: ``shop_rule`` or the export version."""

    @property
    def files(self) -> int:
        return len(self.written)


def write_logs(
    home: Path,
    simulations: Mapping[str, Simulation],
    schemas: Mapping[str, SourceSchema],
    *,
    days: int,
    start: dt.date,
    seed: int,
    events_per_day: int,
    scenario: str,
    serve: Location | str | PathLike[str] | None,
) -> LandingSummary:
    """Simulates ``days`` days from ``start`` and writes the landing files of every domain of
    ``simulations`` (by domain name; ``schemas`` holds every dataset they write, by name).

    A domain's logs of a day come from its own random stream, spawned from ``(seed, day)`` in
    the order of ``simulations``: a domain added after the others leaves their logs unchanged.

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
    rows: dict[str, int] = {name: 0 for name in schemas}
    written: list[Path] = []
    day_list = [start + dt.timedelta(days=i) for i in range(days)]
    policies = logging_policies(list(simulations), serve)
    for day in day_list:
        seq = np.random.SeedSequence([seed, day.toordinal()])
        for (domain, sim), child in zip(simulations.items(), seq.spawn(len(simulations)),
                                        strict=True):
            config = scen.config_for(domain, sim.config)
            for name, frame in sim.generate(world, config, day, np.random.default_rng(child),
                                            events_per_day, logging=policies[domain]).items():
                if name not in schemas:
                    raise ValueError(f"the {domain} simulation writes a landing dataset "
                                     f"{name!r} that no domain declares")
                schema = schemas[name]
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
