"""The simulated shop as a whole: every registered domain's simulator, ground truth and logs.

The simulator package knows each domain's dynamics but not which domains exist; this module
joins it to the registry (:mod:`offline_rl.domains`), so a domain added there is simulated,
logged and valued with no other edit.
"""

from __future__ import annotations

import datetime as dt
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from offline_rl.domains import all_domains, get_domain, landing_schemas
from offline_rl.simulator.base import BEHAVIOR, DomainEnv, PolicyFn, RolloutResult, true_value
from offline_rl.simulator.logs import LandingSummary, write_logs

if TYPE_CHECKING:
    from offline_rl.paths import Location


def simulator_for(domain: str, scenario: str = "default") -> Any:
    """The simulator of ``domain`` in ``scenario`` (the shop that produced the logs), with the
    observation its own dynamics define (``Domain.make_simulator`` adds what the domain's
    transitions add to it, e.g. inventory's action mask)."""
    return get_domain(domain).dynamics(scenario)


def make_env(domain: str, scenario: str = "default") -> DomainEnv:
    """A gymnasium environment of one episode of ``domain`` (info carries behaviour probs)."""
    return DomainEnv(simulator_for(domain, scenario))


def policy_value(
    domain: str, policy: PolicyFn | str = BEHAVIOR, *, scenario: str = "default",
    episodes: int = 20_000, seed: int = 0,
) -> RolloutResult:
    """True expected return of ``policy`` in ``domain`` by simulator rollouts."""
    return true_value(simulator_for(domain, scenario), policy, episodes=episodes, seed=seed)


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
    """Simulates ``days`` days from ``start`` and writes every registered domain's landing
    files (:func:`offline_rl.simulator.logs.write_logs`, whose documentation has the layout,
    the random streams and what ``serve`` does)."""
    return write_logs(home, {d.name: d.simulation for d in all_domains()}, landing_schemas(),
                      days=days, start=start, seed=seed, events_per_day=events_per_day,
                      scenario=scenario, serve=serve)
