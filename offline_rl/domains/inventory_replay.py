"""Demand replay: the value of any replenishment policy on the logged days, without a model.

A replenishment decision does not change what customers want: the day's demand, the trailing
demand the order sizes are measured in, the SKU's lead time, capacity, price and cost, and
the arrival of orders placed before the planning episode are all *exogenous*. Only the stock
on hand and the orders in the pipeline depend on the policy, and they follow the shop's own
bookkeeping. So a held-out episode can be replayed under any policy: start from its logged
opening stock, let the policy order each morning, receive orders ``lead_time_days`` later,
sell ``min(demand, stock)`` of the logged demand and book the day's reward. The mean replayed
return over held-out episodes estimates the policy's value with no importance weights and no
fitted model, and every policy is replayed against the same demand, so differences between
policies are measured far more precisely than their values (common random numbers). This is
how replenishment teams backtest ordering rules; here it is the ``replay`` estimator
(:mod:`offline_rl.ope.replay`), the inventory gate's headline.

Bookkeeping (the rules the logs themselves follow, checked on every data set):

* an order of action ``a`` is ``floor(order_multiples[a] * 7 * demand_7d_mean)`` units and
  arrives at the opening of day ``t + lead_time_days``;
* ``stock_end = stock_on_hand - min(demand, stock_on_hand)`` (no backorders), and the next
  day opens with ``stock_end`` plus that day's arrivals;
* the reward is ``(price - cost) * sales - h * cost * stock_end - (F + u * quantity) *
  1[quantity > 0] - p * price * lost_sales``; the four rates ``h, F, u, p`` are fitted to the
  logged rewards by least squares (the shop's accounting, read from its own books).

**Fidelity check.** Before anything is replayed, the logged orders are replayed through these
rules. They must reproduce the logged order quantities, inventory positions, closing stock,
state features and rewards (to float32 rounding), arrivals from before the episode must be
non-negative, and the logs must identify every cost rate (some order, closing stock and lost
sale). If anything differs, :class:`~offline_rl.ope.replay.ReplayUnavailable` names the
first episode, day and field: the logs do not follow the rules (a changed cost accounting,
unlogged deliveries, transitions built before the replay columns existed) and the estimate is
left out, so a gate that heads on it keeps the incumbent.

**Assumptions.** Demand is recorded uncensored (``demand`` includes the lost sales) and does
not depend on availability; a shop that only logs sales would understate the demand of
stocked-out days, and replay would then undervalue policies that keep more stock. The episode
ends with its last logged day; stock left then has no value (as in the reward).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from offline_rl.data.arrays import DecisionArrays
from offline_rl.ope.replay import ReplayUnavailable

REPLAY_COLUMNS: tuple[str, ...] = (
    "stock_on_hand", "inventory_position", "demand_7d_mean", "capacity", "lead_time_days",
    "unit_price", "unit_cost", "demand", "quantity", "stock_end",
)
"""Logged columns the replay reads per decision (raw order and snapshot fields)."""

COST_RATES: tuple[str, ...] = ("holding_rate", "order_fixed_cost", "order_unit_cost",
                               "stockout_penalty_rate")
"""The fitted accounting rates, in the order of :attr:`InventoryLogs.rates`."""

_ENDOGENOUS = ("stock_weeks", "on_order_weeks", "headroom_weeks")


@dataclass(frozen=True)
class InventoryLogs:
    """Held-out episodes as ``[episodes, days]`` matrices, ready to replay.

    ``valid`` marks logged days (an episode's days run from 0 without gaps). ``exo_arrivals``
    are the units arriving at a day's opening from orders placed before the episode, and
    ``exo_pending0`` those still on order at day 0. ``rates`` are the fitted
    ``COST_RATES``; ``fit_error`` the largest absolute reward error of replaying the logged
    orders with them.
    """

    valid: np.ndarray
    obs: np.ndarray
    mean7: np.ndarray
    demand: np.ndarray
    capacity: np.ndarray
    lead: np.ndarray
    price: np.ndarray
    cost: np.ndarray
    stock0: np.ndarray
    exo_arrivals: np.ndarray
    exo_pending0: np.ndarray
    rates: tuple[float, float, float, float]
    fit_error: float

    @property
    def episodes(self) -> int:
        return int(self.valid.shape[0])


@dataclass(frozen=True)
class ReplayedDays:
    """What replaying one policy gives, per ``[episode, day]`` (zeros where not ``valid``)."""

    actions: np.ndarray
    quantity: np.ndarray
    position: np.ndarray
    stock_start: np.ndarray
    stock_end: np.ndarray
    reward: np.ndarray
    obs: np.ndarray


class InventoryReplay:
    """Demand replay of the replenishment domain (see the module docstring).

    Args:
        feature_names: The domain's state features, in order (the observation layout).
        order_multiples: Order sizes in weeks of trailing mean demand, by action.
        mask_features: The action-mask features, in action order.
    """

    name = "replay"
    columns = REPLAY_COLUMNS

    def __init__(self, feature_names: Sequence[str], order_multiples: Sequence[float],
                 mask_features: Sequence[str]) -> None:
        self.index = {n: i for i, n in enumerate(feature_names)}
        missing = [n for n in (*_ENDOGENOUS, *mask_features) if n not in self.index]
        if missing:
            raise ValueError(f"inventory replay: features {missing} are not in the layout")
        self.multiples = np.asarray(order_multiples, dtype=np.float64)
        self.mask_index = [self.index[n] for n in mask_features]
        if len(self.mask_index) != self.multiples.shape[0]:
            raise ValueError("inventory replay: one mask feature per order size is needed")

    # -- data ---------------------------------------------------------------------------
    def prepare(self, arrays: DecisionArrays) -> InventoryLogs:
        """The held-out episodes as matrices, with the fidelity check (module docstring).

        Raises :class:`ReplayUnavailable` naming the first missing column or the first
        episode, day and field the rules do not reproduce.
        """
        missing = [c for c in REPLAY_COLUMNS if c not in arrays.extras]
        if missing:
            raise ReplayUnavailable(
                f"inventory replay: the logged decisions lack {missing} (transitions built "
                "before these columns were kept: rebuild the inventory transitions)")
        unset = [c for c in REPLAY_COLUMNS if not np.isfinite(arrays.extras[c]).all()]
        if unset:
            row = int(np.flatnonzero(~np.isfinite(arrays.extras[unset[0]]))[0])
            raise ReplayUnavailable(
                f"inventory replay: {unset} are empty or not finite, e.g. at episode "
                f"{int(arrays.episode[row])} day {int(arrays.step[row])} (transitions built "
                "before these columns were kept: rebuild the inventory transitions)")
        ep, step = arrays.episode, arrays.step
        n_ep, days = int(ep.max()) + 1, int(step.max()) + 1
        if np.unique(ep).shape[0] != n_ep:
            raise ValueError("inventory replay: episodes must be numbered 0 .. n - 1 (as "
                             "decision_arrays numbers them): one replayed return per episode")
        starts = np.r_[0, np.flatnonzero(np.diff(ep)) + 1]
        position_in_episode = np.arange(ep.shape[0]) - np.repeat(
            starts, np.diff(np.r_[starts, ep.shape[0]]))
        if (step != position_in_episode).any():
            row = int(np.flatnonzero(step != position_in_episode)[0])
            raise ReplayUnavailable(f"inventory replay: episode {int(ep[row])} skips a day "
                                    f"(row {row} is step {int(step[row])}); replay needs "
                                    "each episode's days from day 0 without gaps")

        def grid(values: np.ndarray, dtype: type = np.float64) -> np.ndarray:
            out: np.ndarray = np.zeros((n_ep, days), dtype=dtype)
            out[ep, step] = values
            return out

        valid = grid(np.ones(ep.shape[0], dtype=bool), bool)
        obs = np.zeros((n_ep, days, arrays.observations.shape[1]), dtype=np.float32)
        obs[ep, step] = arrays.observations
        col = {c: grid(np.asarray(arrays.extras[c], dtype=np.float64)) for c in REPLAY_COLUMNS}
        for name in ("capacity", "lead_time_days", "unit_price", "unit_cost"):  # per SKU
            first = col[name][:, :1]
            moved = valid & (col[name] != first)
            if moved.any():
                e, t = (int(v[0]) for v in np.nonzero(moved))
                raise ReplayUnavailable(
                    f"inventory replay: episode {e} day {t}: {name} {col[name][e, t]:g} differs "
                    f"from day 0's {first[e, 0]:g}; replay takes a SKU's {name} to be fixed "
                    "over its planning episode")
        actions = grid(arrays.actions, np.int64)
        rewards = grid(arrays.rewards.astype(np.float64))
        lead = col["lead_time_days"][:, 0].astype(np.int64)
        if (lead < 1).any():
            e = int(np.flatnonzero(lead < 1)[0])
            raise ReplayUnavailable(f"inventory replay: episode {e}: lead_time_days "
                                    f"{int(lead[e])} (expected at least 1)")
        # orders placed before the episode: what the logged stock and position hold beyond
        # the episode's own orders, arriving on the days the logged stock says
        own = self._arrivals(col["quantity"], lead, days)
        opening = np.zeros_like(col["stock_on_hand"])
        opening[:, 1:] = col["stock_end"][:, :-1] + own[:, 1:]
        exo = np.where(valid, col["stock_on_hand"] - opening, 0.0)
        exo[:, 0] = 0.0
        pending0 = col["inventory_position"][:, 0] - col["stock_on_hand"][:, 0]
        bad = (exo < 0) | (np.cumsum(exo, axis=1) > pending0[:, None] + 1e-9)
        if bad.any():
            e, t = (int(v[0]) for v in np.nonzero(bad))
            stock = col["stock_on_hand"][e, t]
            raise ReplayUnavailable(
                f"inventory replay: episode {e} day {t}: stock_on_hand {stock:g} is not the "
                f"previous stock_end plus the arrivals of orders on record (arrival of "
                f"{exo[e, t]:g} units not explained by the pipeline of {pending0[e]:g})")
        logs = InventoryLogs(
            valid=valid, obs=obs, mean7=col["demand_7d_mean"], demand=col["demand"],
            capacity=col["capacity"][:, 0], lead=lead, price=col["unit_price"][:, 0],
            cost=col["unit_cost"][:, 0], stock0=col["stock_on_hand"][:, 0],
            exo_arrivals=exo, exo_pending0=pending0,
            rates=self._fit_rates(col, valid, rewards), fit_error=np.nan)
        replayed = self.replay(logs, lambda _t, _o: actions[:, _t])
        self._check(logs, replayed, col, rewards, actions)
        error = float(np.abs(np.where(valid, replayed.reward - rewards, 0.0)).max())
        return dataclasses.replace(logs, fit_error=error)

    @staticmethod
    def _arrivals(quantity: np.ndarray, lead: np.ndarray, days: int) -> np.ndarray:
        """Units arriving at each day's opening from the episode's own orders."""
        out = np.zeros_like(quantity)
        for t in range(days):
            due = t + lead
            rows = np.flatnonzero(due < days)
            out[rows, due[rows]] += quantity[rows, t]
        return out

    @staticmethod
    def _fit_rates(col: dict[str, np.ndarray], valid: np.ndarray, rewards: np.ndarray
                   ) -> tuple[float, float, float, float]:
        """The four ``COST_RATES`` by least squares on the logged rewards less the margin."""
        price, cost = col["unit_price"][valid], col["unit_cost"][valid]
        stock = col["stock_on_hand"][valid]
        end, demand, qty = col["stock_end"][valid], col["demand"][valid], col["quantity"][valid]
        sales = stock - end
        lost = demand - sales
        target = rewards[valid] - (price - cost) * sales
        design = -np.stack([cost * end, (qty > 0).astype(np.float64), qty * (qty > 0),
                            price * lost], axis=1)
        unidentified = [name for name, c in zip(COST_RATES, design.T, strict=True)
                        if not np.abs(c).max() > 0]
        if unidentified:
            raise ReplayUnavailable(f"inventory replay: the logs cannot identify "
                                    f"{unidentified} (no closing stock, order or lost sale)")
        coef, *_ = np.linalg.lstsq(design, target, rcond=None)
        holding, fixed, unit, lost_sale = (float(c) for c in coef)
        return holding, fixed, unit, lost_sale

    def _check(self, logs: InventoryLogs, replayed: ReplayedDays, col: dict[str, np.ndarray],
               rewards: np.ndarray, actions: np.ndarray) -> None:
        """Raises :class:`ReplayUnavailable` where replaying the logged orders does not give
        the logs."""
        valid = logs.valid
        scale = np.maximum(np.abs(rewards), 1.0)
        checks = {
            "quantity": (replayed.quantity, col["quantity"], 0.5),
            "inventory_position": (replayed.position, col["inventory_position"], 0.5),
            "stock_end": (replayed.stock_end, col["stock_end"], 0.5),
            "reward": (replayed.reward / scale, rewards / scale, 1e-4),
        }
        for name, (got, logged, tol) in checks.items():
            bad = valid & ~(np.abs(got - logged) <= tol)
            if bad.any():
                e, t = (int(v[0]) for v in np.nonzero(bad))
                shown = got * scale if name == "reward" else got
                want = logged * scale if name == "reward" else logged
                raise ReplayUnavailable(
                    f"inventory replay: replaying the logged orders does not reproduce the logs "
                    f"(episode {e}, day {t}, action {int(actions[e, t])}): {name} logged "
                    f"{want[e, t]:g}, replayed {shown[e, t]:g}")
        diff = np.abs(replayed.obs - logs.obs).max(axis=2)
        size = np.maximum(np.abs(logs.obs).max(axis=2), 1.0)
        bad = valid & ~(diff <= 1e-4 * size)
        if bad.any():
            e, t = (int(v[0]) for v in np.nonzero(bad))
            feature = int(np.abs(replayed.obs[e, t] - logs.obs[e, t]).argmax())
            name = next(n for n, i in self.index.items() if i == feature)
            raise ReplayUnavailable(
                f"inventory replay: replaying the logged orders does not reproduce the state "
                f"(episode {e}, day {t}): feature {name} logged {logs.obs[e, t, feature]:g}, "
                f"replayed {replayed.obs[e, t, feature]:g}")

    # -- replay -------------------------------------------------------------------------
    def replay(self, logs: InventoryLogs,
               choose: Callable[[int, np.ndarray], np.ndarray]) -> ReplayedDays:
        """Replays every episode; ``choose(t, observations [episodes, features])`` gives the
        action of each episode on day ``t`` (rows of episodes already over are ignored)."""
        n_ep, days = logs.valid.shape
        rows = np.arange(n_ep)
        h, fixed, unit, penalty = logs.rates
        out = {k: np.zeros((n_ep, days)) for k in ("quantity", "position", "stock_start",
                                                    "stock_end", "reward")}
        acts = np.zeros((n_ep, days), dtype=np.int64)
        obs_all = np.zeros_like(logs.obs)
        horizon = days + int(logs.lead.max()) + 1
        pipe = np.zeros((n_ep, horizon))  # own orders by arrival day
        stock = logs.stock0.astype(np.float64).copy()
        exo_pending = logs.exo_pending0.astype(np.float64).copy()
        for t in range(days):
            live = logs.valid[:, t]
            if t > 0:
                arrived = pipe[:, t] + logs.exo_arrivals[:, t]
                stock = np.where(live, stock + arrived, stock)
                exo_pending = exo_pending - logs.exo_arrivals[:, t]
            mean7 = logs.mean7[:, t]
            on_order = exo_pending + pipe[:, t + 1:].sum(axis=1)
            position = stock + on_order
            week = np.maximum(7.0 * mean7, 1.0)
            sizes = np.floor(self.multiples[None, :] * 7.0 * mean7[:, None])
            allowed = sizes <= (logs.capacity - position)[:, None]
            allowed[:, 0] = True
            obs = logs.obs[:, t].copy()
            obs[:, self.index["stock_weeks"]] = stock / week
            obs[:, self.index["on_order_weeks"]] = on_order / week
            obs[:, self.index["headroom_weeks"]] = np.maximum(logs.capacity - position, 0) / week
            obs[:, self.mask_index] = allowed
            action = np.asarray(choose(t, obs), dtype=np.int64).reshape(-1)
            if action.shape[0] != n_ep or (action < 0).any() \
                    or (action >= self.multiples.shape[0]).any():
                raise ValueError(f"inventory replay: the policy returned {action.shape[0]} "
                                 f"actions or an action outside [0, {self.multiples.shape[0]}) "
                                 f"for {n_ep} observations on day {t}")
            action = np.where(live, action, 0)
            qty = np.where(live, sizes[rows, action], 0.0)
            pipe[rows, t + logs.lead] += qty
            sales = np.minimum(logs.demand[:, t], stock)
            lost = logs.demand[:, t] - sales
            end = stock - sales
            reward = ((logs.price - logs.cost) * sales - h * logs.cost * end
                      - (fixed + unit * qty) * (qty > 0) - penalty * logs.price * lost)
            for key, value in (("quantity", qty), ("position", position), ("stock_start", stock),
                               ("stock_end", end), ("reward", reward)):
                out[key][:, t] = np.where(live, value, 0.0)
            acts[:, t] = action
            obs_all[:, t] = np.where(live[:, None], obs, 0.0)
            stock = np.where(live, end, stock)
        return ReplayedDays(actions=acts, obs=obs_all, **out)

    def returns(self, logs: InventoryLogs, policy: Callable[[np.ndarray], np.ndarray],
                gamma: float = 1.0) -> np.ndarray:
        """Each episode's replayed discounted return under ``policy(observations) ->
        actions`` (float32 observations in the domain's layout)."""
        days = self.replay(logs, lambda _t, obs: policy(obs.astype(np.float32)))
        discount = gamma ** np.arange(logs.valid.shape[1])
        return (days.reward * discount[None, :]).sum(axis=1)
