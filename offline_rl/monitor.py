"""Monitoring what was promised: what the served policy earned against what its promotion
promised, and against the policy served before it.

Every promotion is a promise: the export's manifest records the value of the policy *as it
is served* (greedy action plus exploration) estimated on the decision night's held-out
episodes (``promise``: the gate's headline estimator and its ``1 - alpha`` interval). Once
it serves, its decisions carry its version (``policy_version``), so its realized value is
the mean return of its own logged, whole episodes.

For partition ``day`` the monitor looks at the episodes that started in the ``window_days``
days up to ``day - settle_days`` (whole by then; ``settle_days`` defaults to the domain's
``lookahead_days``) and groups them by the policy that served them. The *served* policy is
the one that served the most episodes on the last of those days; the *previous* policy is
the one that served before it (the latest other policy in the window). Two one-sided tests,
each at level ``alpha`` (default 5%):

* **below promise**: Student's t test of ``H0: true value >= promised lower bound`` on the
  served policy's episode returns (the promise's lower end taken as fixed). If the served
  policy is worth at least its promised lower bound, a night raises this alarm with
  probability about ``alpha`` (asymptotically, episodes independent). Returns are skewed
  (most carts earn nothing, a few a lot), which makes the one-sample t test's lower tail
  heavier than nominal in small samples: for gamma-distributed returns (shape 2) at
  ``alpha`` = 5% the measured rate is 8.5% with 50 episodes, 5.4% with 400 and 5.6% with
  2,000 (2,000 simulated nights each); a night of a domain holds hundreds to thousands.
* **below previous**: Welch's t test of ``H0: served value >= previous value`` on the two
  policies' own episodes (measured on the same skewed returns: 4.6-5.0%). Both were served
  in the same shop; a drift between their periods (season, traffic) is not corrected for,
  so a shop with strong weekly swings should pool a whole week (``window_days``).

The level holds per night. The tests are repeated every night on overlapping windows, so
over a policy's life the chance that some night alarms falsely grows with the nights it
serves (a sequential test with an alpha-spending boundary would bound that; this one does
not), which is why a rollback waits for ``min_nights`` of evidence.

With ``auto_rollback``, a served policy that earns significantly less than the previous
policy, after at least ``min_nights`` start days of its own episodes, is rolled back:
``latest`` goes back to the previous version (an export; the shop's rule cannot be restored
this way and is reported), the rollback is recorded with its reason, and the next stage's
incumbent is the restored policy. A broken promise alone fails the check but rolls nothing
back: the policy may still earn more than the one before it (in a 15-night loop an ads
policy promised 187 [165, 210] and worth 151 was rolled back to one worth 135 when a broken
promise was enough).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import numpy as np
import polars as pl
from scipy import stats

from offline_rl.data.schemas import SHOP_RULE
from offline_rl.data.warehouse import Warehouse
from offline_rl.domains import Domain
from offline_rl.export.loader import MANIFEST, ExportError
from offline_rl.export.registry import current_version, rollback
from offline_rl.paths import DataPaths

MONITOR_TABLE = "policy_monitor"
UNKNOWN = "unknown"
"""The policy of episodes whose decisions name none (logs without ``policy_version``)."""


@dataclass(frozen=True)
class MonitorConfig:
    """Settings of the nightly monitor.

    Attributes:
        alpha: One-sided level of each test (the false-alarm rate per night when the served
            policy keeps its promise, or is as good as the previous one).
        window_days: Start days pooled for the served and the previous policy's realized
            values.
        settle_days: Days between the last start day pooled and the partition, so those
            episodes are whole; None: the domain's ``lookahead_days``.
        auto_rollback: Roll a failing served policy back to the previous version.
        min_nights: Start days of its own episodes a served policy must have before an
            automatic rollback (one night's evidence can be a bad day).
    """

    alpha: float = 0.05
    window_days: int = 14
    settle_days: int | None = None
    auto_rollback: bool = False
    min_nights: int = 3

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 0.5:
            raise ValueError(f"alpha: expected a level in (0, 0.5), got {self.alpha!r}")
        if self.window_days < 1 or self.min_nights < 1:
            raise ValueError("window_days and min_nights must be at least 1")
        if self.settle_days is not None and self.settle_days < 0:
            raise ValueError(f"settle_days: expected >= 0, got {self.settle_days!r}")


@dataclass(frozen=True)
class Realized:
    """A policy's realized value: the mean return of its whole logged episodes with a
    two-sided ``1 - 2 * alpha`` Student-t interval (its ends are the one-sided bounds)."""

    policy: str
    first_day: dt.date
    last_day: dt.date
    nights: int
    episodes: int
    value: float
    low: float
    high: float
    stderr: float


@dataclass(frozen=True)
class MonitorReport:
    """What the monitor found for one partition."""

    domain: str
    day: dt.date
    start_days: tuple[dt.date, dt.date]
    served: Realized | None
    previous: Realized | None
    promise: dict[str, Any] | None
    p_below_promise: float | None
    p_below_previous: float | None
    below_promise: bool
    below_previous: bool
    rolled_back_to: str | None
    reasons: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.below_promise or self.below_previous)

    def as_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=str))


def episode_returns(transitions: pl.DataFrame) -> pl.DataFrame:
    """One row per whole episode (its last step is a terminal): ``episode_id``, start day,
    serving policy (``UNKNOWN`` where the logs name none) and return."""
    return (
        transitions.group_by("episode_id")
        .agg(day=pl.col("partition_date").first(),
             policy=pl.col("policy_version").drop_nulls().first(),
             ret=pl.col("reward").sum(),
             whole=pl.col("terminal").any())
        .filter("whole")
        .with_columns(pl.col("policy").fill_null(UNKNOWN))
        .drop("whole")
    )


def realized(returns: pl.DataFrame, policy: str, alpha: float) -> Realized | None:
    """The realized value of ``policy`` over its episodes in ``returns`` (None if it has
    fewer than two)."""
    own = returns.filter(pl.col("policy") == policy)
    n = own.height
    if n < 2:
        return None
    values = own["ret"].to_numpy().astype(np.float64)
    mean, se = float(values.mean()), float(values.std(ddof=1) / math.sqrt(n))
    half = float(stats.t.ppf(1.0 - alpha, n - 1)) * se
    days = own["day"]
    # a Date column of at least two episodes' start days: its min and max are dates
    return Realized(policy=policy, first_day=cast(dt.date, days.min()),
                    last_day=cast(dt.date, days.max()),
                    nights=days.n_unique(), episodes=n, value=mean, low=mean - half,
                    high=mean + half, stderr=se)


def p_below(r: Realized, bound: float) -> float:
    """One-sided p-value of ``H0: value >= bound`` (Student's t on the episode returns)."""
    if r.stderr == 0:
        return 0.0 if r.value < bound else 1.0
    return float(stats.t.cdf((r.value - bound) / r.stderr, r.episodes - 1))


def p_below_other(r: Realized, other: Realized) -> float:
    """One-sided p-value of ``H0: value(r) >= value(other)`` (Welch's t test)."""
    var = r.stderr ** 2 + other.stderr ** 2
    if var == 0:
        return 0.0 if r.value < other.value else 1.0
    df = var ** 2 / (r.stderr ** 4 / (r.episodes - 1) + other.stderr ** 4 / (other.episodes - 1))
    return float(stats.t.cdf((r.value - other.value) / math.sqrt(var), df))


def promise_of(paths: DataPaths, domain: Domain, version: str) -> dict[str, Any] | None:
    """The promise recorded in ``version``'s manifest (None: not an export, or none)."""
    if version in (SHOP_RULE, UNKNOWN):
        return None
    manifest = paths.exports / domain.name / version / MANIFEST
    if not manifest.is_file():
        return None
    return json.loads(manifest.read_text()).get("promise")


def monitor(paths: DataPaths, domain: Domain, day: dt.date, config: MonitorConfig
            ) -> MonitorReport:
    """Checks the served policy against its promise and its predecessor for partition
    ``day``, rolls it back if ``config`` says so, and records the report in
    ``policy_monitor`` (replacing the day's row)."""
    settle = domain.lookahead_days if config.settle_days is None else config.settle_days
    last = day - dt.timedelta(days=settle)
    first = last - dt.timedelta(days=config.window_days - 1)
    frame = Warehouse(paths.warehouse).read_partitions(domain.transitions_table, first, last)
    returns = episode_returns(frame) if frame.height else pl.DataFrame()
    reasons: list[str] = []
    served = previous = None
    promise = None
    p_promise = p_previous = None
    if returns.height == 0 or returns.filter(pl.col("day") == last).height == 0:
        reasons.append(f"no whole episodes started on {last}: nothing to monitor yet")
    else:
        counts = returns.filter(pl.col("day") == last).group_by("policy").len() \
            .sort("len", "policy", descending=[True, False])
        current = str(counts["policy"][0])
        served = realized(returns, current, config.alpha)
        others = returns.filter(pl.col("policy") != current) \
            .group_by("policy").agg(pl.col("day").max()).sort("day", "policy", descending=True)
        if others.height:
            previous = realized(returns, str(others["policy"][0]), config.alpha)
        promise = promise_of(paths, domain, current)
        if served is None:
            reasons.append(f"{current} has fewer than two whole episodes in the window")
        else:
            if promise and promise.get("low") is not None and math.isfinite(promise["low"]):
                p_promise = p_below(served, float(promise["low"]))
                reasons.append(
                    f"{current} realized {served.value:.4g} [{served.low:.4g}, "
                    f"{served.high:.4g}] on {served.episodes} episodes over {served.nights} "
                    f"start day(s); promised {promise['value']:.4g} [{promise['low']:.4g}, "
                    f"{promise['high']:.4g}] ({promise['estimator']}): one-sided t test "
                    f"p = {p_promise:.3g}")
            elif current not in (SHOP_RULE, UNKNOWN):
                reasons.append(f"{current} carries no promise (exported before promises were "
                               "recorded)")
            if previous is not None:
                p_previous = p_below_other(served, previous)
                reasons.append(
                    f"previous policy {previous.policy} realized {previous.value:.4g} "
                    f"[{previous.low:.4g}, {previous.high:.4g}] on {previous.episodes} "
                    f"episodes: Welch one-sided t test p = {p_previous:.3g}")
    below_promise = p_promise is not None and p_promise < config.alpha
    below_previous = p_previous is not None and p_previous < config.alpha
    rolled = None
    if served is not None and (below_promise or below_previous):
        reasons.append(f"ALERT: {served.policy} earns significantly less than "
                       + ("its promise" if below_promise else "")
                       + (" and " if below_promise and below_previous else "")
                       + ("the previous policy" if below_previous else "")
                       + f" (one-sided level {config.alpha:g})")
        if config.auto_rollback and below_previous:
            rolled = _roll_back(paths, domain, served, previous, config, reasons)
        elif config.auto_rollback:
            reasons.append("no rollback: a broken promise alone does not show the previous "
                           "policy would earn more")
    report = MonitorReport(
        domain=domain.name, day=day, start_days=(first, last), served=served,
        previous=previous, promise=promise, p_below_promise=p_promise,
        p_below_previous=p_previous, below_promise=below_promise,
        below_previous=below_previous, rolled_back_to=rolled, reasons=reasons)
    _record(paths, report)
    return report


def _roll_back(paths: DataPaths, domain: Domain, served: Realized,
               previous: Realized | None, config: MonitorConfig, reasons: list[str]
               ) -> str | None:
    """Points ``latest`` back to the previous version when the evidence allows; says why
    not otherwise."""
    root = paths.exports / domain.name
    if served.nights < config.min_nights:
        reasons.append(f"no rollback yet: {served.nights} start day(s) of evidence, "
                       f"{config.min_nights} needed")
        return None
    if current_version(root) != served.policy:
        reasons.append(f"no rollback: latest no longer names {served.policy}")
        return None
    if previous is None or previous.policy in (SHOP_RULE, UNKNOWN):
        reasons.append("no rollback: the previous policy is not an export (withdraw "
                       f"{served.policy} by hand to return to the shop's rule)")
        return None
    try:
        target = rollback(paths.exports, domain.name, previous.policy)
    except ExportError as exc:
        reasons.append(f"rollback to {previous.policy} failed: {exc}")
        return None
    reasons.append(f"ROLLED BACK: latest now names {target}")
    return target


def _record(paths: DataPaths, report: MonitorReport) -> None:
    s, p, promise = report.served, report.previous, report.promise or {}
    row = pl.DataFrame([{
        "domain": report.domain, "partition_date": report.day,
        "first_start_day": report.start_days[0], "last_start_day": report.start_days[1],
        "served": s.policy if s else None, "served_nights": s.nights if s else None,
        "served_episodes": s.episodes if s else None,
        "realized_value": s.value if s else None, "realized_low": s.low if s else None,
        "realized_high": s.high if s else None,
        "promised_estimator": promise.get("estimator"),
        "promised_value": promise.get("value"), "promised_low": promise.get("low"),
        "promised_high": promise.get("high"),
        "previous": p.policy if p else None, "previous_value": p.value if p else None,
        "p_below_promise": report.p_below_promise,
        "p_below_previous": report.p_below_previous,
        "below_promise": report.below_promise, "below_previous": report.below_previous,
        "rolled_back_to": report.rolled_back_to, "reasons": json.dumps(report.reasons),
    }], schema=MONITOR_SCHEMA)
    Warehouse(paths.warehouse).replace(
        [(MONITOR_TABLE, row, "registry/delete_decision",
          {"domain": report.domain, "day": report.day})],
        label=f"{MONITOR_TABLE} {report.domain} {report.day}")


MONITOR_SCHEMA: dict[str, pl.DataType] = {
    "domain": pl.String(), "partition_date": pl.Date(), "first_start_day": pl.Date(),
    "last_start_day": pl.Date(), "served": pl.String(), "served_nights": pl.Int64(),
    "served_episodes": pl.Int64(), "realized_value": pl.Float64(),
    "realized_low": pl.Float64(), "realized_high": pl.Float64(),
    "promised_estimator": pl.String(), "promised_value": pl.Float64(),
    "promised_low": pl.Float64(), "promised_high": pl.Float64(), "previous": pl.String(),
    "previous_value": pl.Float64(), "p_below_promise": pl.Float64(),
    "p_below_previous": pl.Float64(), "below_promise": pl.Boolean(),
    "below_previous": pl.Boolean(), "rolled_back_to": pl.String(), "reasons": pl.String(),
}
"""Columns of ``policy_monitor``: one row per domain and partition."""


def monitor_history(paths: DataPaths, domain: Domain) -> pl.DataFrame:
    """Every recorded monitor row of ``domain``, oldest first (empty without any)."""
    wh = Warehouse(paths.warehouse)
    if not wh.table_exists(MONITOR_TABLE):
        return pl.DataFrame(schema=MONITOR_SCHEMA)
    return wh.query("monitor/select_history", domain=domain.name)
