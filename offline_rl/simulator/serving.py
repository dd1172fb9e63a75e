"""The simulated shop serving an exported policy instead of its own rules.

A day of landing logs is written under a *logging policy*: the shop's own rule (each
simulator's ``behavior_probs``) or what an export root's ``latest`` names for the domain,
served through the export's serving head (:mod:`offline_rl.export.exploration`). The served
policy sees the simulator's observation (the transitions' feature layout, so exported
models read it as trained), its action is drawn from the serving head's distribution, and
the probability of that action is what the logs record as ``behavior_prob``: exactly what a
shop that serves the export logs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from offline_rl.data.schemas import SHOP_RULE

if TYPE_CHECKING:  # the loader (and torch) only load when an export is served
    from offline_rl.export.loader import LoadedPolicy
    from offline_rl.paths import Location

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class LoggingPolicy:
    """What serves a domain's decisions in the simulated shop.

    Attributes:
        name: ``SHOP_RULE`` or the export version served (e.g. ``v0003``).
        probs: ``observations [n, features] -> probabilities [n, n_actions]``; None for the
            shop's rule (the simulator's own ``behavior_probs``).
        policy: The loaded export, when one is served.
    """

    name: str = SHOP_RULE
    probs: Callable[[np.ndarray], np.ndarray] | None = None
    policy: LoadedPolicy | None = None

    @classmethod
    def served(cls, policy: LoadedPolicy) -> LoggingPolicy:
        from offline_rl.export.loader import ExportError

        if policy.serving is None:
            raise ExportError(f"{policy.path} has no serving head: a shop cannot log "
                              "propensities for it (re-export it with an exploration)")
        return cls(name=str(policy.version or policy.path), probs=policy.action_probs,
                   policy=policy)

    def wrap(self, sim: Any) -> Any:
        """``sim`` itself for the shop's rule, else ``sim`` with this policy logging."""
        return sim if self.probs is None else ServedSimulator(sim, self.probs)


SHOP = LoggingPolicy()


class ServedSimulator:
    """A domain simulator whose ``behavior_probs`` are a served policy's probabilities.

    Everything else is the wrapped simulator's, so the dynamics, customers and random draws
    are the shop's; the generators sample the logged action from these probabilities and
    log the sampled action's probability.
    """

    def __init__(self, sim: Any, probs: Callable[[np.ndarray], np.ndarray]) -> None:
        self._sim = sim
        self._probs = probs

    def behavior_probs(self, state: Any) -> np.ndarray:
        probs = np.asarray(self._probs(self._sim.observe(state)), dtype=np.float64)
        expected = (probs.shape[0], self._sim.n_actions) if probs.ndim == 2 else None
        if probs.shape != expected:
            raise ValueError(f"{self._sim.name}: the served policy gave probabilities of shape "
                             f"{list(probs.shape)}, expected [batch, {self._sim.n_actions}]")
        return probs

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sim, name)


def logging_policies(domains: list[str], serve: Location | str | os.PathLike[str] | None
                     ) -> dict[str, LoggingPolicy]:
    """Per domain, what ``serve``'s ``latest`` names (the shop's rule where nothing is
    promoted yet, or without ``serve``)."""
    policies = {d: SHOP for d in domains}
    if serve is None:
        return policies
    from offline_rl.export.loader import LATEST, load_latest
    from offline_rl.paths import as_location

    root = as_location(serve)
    for domain in domains:
        if not (root / domain / LATEST).is_file():
            continue
        policies[domain] = LoggingPolicy.served(load_latest(root, domain))
        log.info("%s: serving %s", domain, policies[domain].name)
    return policies
