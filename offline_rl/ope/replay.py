"""The ``replay`` estimator: a policy's value from replaying held-out episodes under it.

Some decisions do not change what the world brings: a replenishment order does not change the
day's demand. For such a domain, the logs hold the whole exogenous input of each episode,
and the shop's bookkeeping (deliveries, sales, costs) gives the rest, so any policy can be
replayed on a held-out episode and its return booked exactly as if it had been in charge
that week (:mod:`offline_rl.domains.inventory_replay`). The estimate is the mean replayed
return; it needs no importance weights (no support problem: a policy that empties the shelf
is replayed on the empty shelf) and no fitted model (no extrapolation). Its error is the
sampling error of the held-out episodes, and since every policy is replayed on the same
episodes, the difference between two policies is measured much more precisely than either.

A domain offers replay through ``Domain.replay`` (an object with ``name``, ``columns``,
``prepare(arrays)`` and ``returns(prepared, policy, gamma)``). ``prepare`` checks that the
logs follow the bookkeeping (replaying the logged actions must reproduce the logs) and raises
:class:`ReplayUnavailable` with the reason when they do not: the estimate is then left out,
never guessed.

Interval: percentile bootstrap over episodes (as the other estimators). Replicates on the
FQE refits' resamples (``offline_rl.ope.evaluate.refit_counts``) are recorded too, so the
gate pairs a candidate's replay with the incumbent's value on the same resampled episodes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from offline_rl.ope.estimators import Estimate, on_policy_value

if TYPE_CHECKING:  # validate-ope's parser imports this module without polars
    from offline_rl.data.arrays import DecisionArrays

REPLAY = "replay"
"""The estimator's name in estimates, reports and the gate's ``headline``."""


class ReplayUnavailable(ValueError):
    """The logs cannot be replayed (missing columns, or the bookkeeping does not reproduce
    them); the message names the first offending episode, day and field."""


class Replay(Protocol):
    """What a domain provides to be replayed (see the module docstring)."""

    name: str
    columns: tuple[str, ...]

    def prepare(self, arrays: DecisionArrays) -> Any: ...

    def returns(self, prepared: Any, policy: Callable[[np.ndarray], np.ndarray],
                gamma: float = 1.0) -> np.ndarray: ...


@dataclass(frozen=True)
class ReplayData:
    """Held-out logs prepared once for replaying every policy evaluated on them.

    ``prepared`` is the domain's replay input, None when the logs cannot be replayed, with
    ``reason`` saying why.
    """

    replay: Replay
    prepared: Any
    reason: str = ""

    @property
    def available(self) -> bool:
        return self.prepared is not None


def prepare_replay(replay: Replay | None, arrays: DecisionArrays) -> ReplayData | None:
    """The domain's replay input for ``arrays``, or the reason it cannot be had; None for a
    domain that offers no replay."""
    if replay is None:
        return None
    try:
        return ReplayData(replay, replay.prepare(arrays))
    except ReplayUnavailable as exc:
        return ReplayData(replay, None, str(exc))


def replay_estimate(returns: np.ndarray, counts: np.ndarray, *, n_bootstrap: int,
                    alpha: float, seed: int) -> tuple[Estimate, list[float]]:
    """The replay estimate from per-episode replayed returns (already discounted).

    Returns the estimate (mean, percentile bootstrap interval over episodes) and its value on
    each resample of ``counts`` (``[resamples, episodes]`` episode counts, the FQE refits'),
    for the gate's paired comparison.
    """
    returns = np.asarray(returns, dtype=np.float64)
    if returns.ndim != 1 or not returns.shape[0]:
        raise ValueError("replay_estimate: expected one return per episode")
    est = on_policy_value(returns, np.arange(returns.shape[0]), gamma=1.0,
                          n_bootstrap=n_bootstrap, alpha=alpha, seed=seed)
    replicates = [float(v) for v in (counts @ returns) / counts.sum(axis=1)] \
        if counts.shape[0] else []
    return Estimate(REPLAY, est.value, est.low, est.high, est.stderr), replicates
