"""Ad bidding: the bid multiplier of a search-ad campaign per daypart, under a daily budget.

One episode is one campaign-day. Each campaign advertises one of the shop's categories (its
``vertical``) in one market, and its day runs from local midnight in the market's time zone
(``market_utc_offsets``: UTC and markets west of it, so a campaign-day that starts on a UTC
date ends on that date or the next one). The day is split into dayparts of
``daypart_hours`` hours (4: six dayparts, a common granularity of ad-schedule bid
adjustments). At the start of each daypart the shop sets the bid to ``base_bid * m`` with
``m`` one of ``bid_multipliers`` (0.5, 0.75, 1.0, 1.25, 1.5; the action is its index), and
the auctions of every local hour ``h`` of the daypart run with it:

    opportunities ~ Poisson(daily_opportunities * hour_traffic[h])
    competitor    = base_bid * competition * hour_competition[h] * LogNormal(0, comp_noise)
    win           = sigmoid(win_slope * log(bid / competitor))
    impressions ~ Binomial(opportunities, win),  clicks ~ Binomial(impressions, ctr)
    cost per click = bid * (pay_floor + pay_slope * win)        (second-price-like)
    conversions ~ Binomial(clicks, cvr * hour_cvr[h])

The reward of a decision is ``conversion_value * conversions - spend`` summed over its
daypart. Spend may not exceed the budget left: in the hour the budget runs out only the
clicks it still pays for count, and the day ends (terminal); otherwise it ends after the last
daypart (hour 23).

Campaigns (a fixed pool of ``n_campaigns`` drawn from the world's seed) differ in auction
volume (log-normal around ``daily_opportunities_median``, sigma 0.5), conversion rate
(around ``cvr_median``, sigma 0.3), margin per conversion (around ``value_median``, sigma 0.4,
times the vertical's ``vertical_value``), base bid (value per click times a uniform draw from
``base_bid_ratio_range``: base bids are set roughly, not from what a click earns),
competition (log-normal with ``competition_sigma``, times the vertical's
``vertical_competition``) and daily budget. The budget is planned on the campaign's usual
competition: ``planned_spend`` is the expected spend of a whole day at multiplier 1 and the
budget is ``budget_ratio`` (uniform in ``budget_ratio_range``) times it, rounded to cents.
Each day draws a competition level around the campaign's (``daily_competition_sigma``); within
the day the competitor bid follows the hourly profile ``hour_competition`` with unobserved
hour-to-hour noise ``comp_noise``. Traffic (``hour_traffic``) and conversion rate
(``hour_cvr``) follow diurnal profiles in the campaign's local time: evenings bring the most
auctions and the best-converting clicks, but also the stiffest competition.

State features (the bidder's decision context, all known before the daypart's auctions):
the daypart's first hour / 23 with the sine and cosine of its angle on the clock, budget
left / daily budget, pacing gap (spent share minus the share of the day's traffic already
passed), share of the day's traffic still ahead, the daypart's conversion-rate factor
(``cvr_factor``, ``hour_cvr`` averaged over its hours weighted by traffic), the campaign's
expected value per click over its base bid (``value_ratio``; times ``cvr_factor`` it tells
whether a click at the base bid pays for itself), today's expected competitor bid over the
base bid in the daypart (``competition_ratio``, with ``hour_competition`` averaged the same
way), and the daily budget over the planned spend (``budget_ratio``).

Behaviour policy (budget pacing, the common rule of ad platforms' "standard delivery"): it
aims for ``m* = clip(1 - behavior_pacing_gain * pacing gap, 0.5, 1.5)``, bidding up when
spending behind the traffic curve and down when ahead, with softmax weights
``-|m - m*| / behavior_temperature`` mixed with ``behavior_epsilon`` uniform exploration. It
ignores what clicks are worth, so it overbids on campaigns and hours whose clicks do not pay
for themselves, and bids the same into expensive evening auctions as into cheap night ones.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from offline_rl.data.schemas import ADS
from offline_rl.simulator.base import PolicyFn, Simulation, sample_actions
from offline_rl.simulator.serving import SHOP, LoggingPolicy
from offline_rl.simulator.world import CATEGORIES, World

HOURS = 24


@dataclass(frozen=True)
class AdsConfig:
    """Dynamics and behaviour-policy parameters of the ad-bidding domain.

    Attributes:
        n_campaigns: Size of the campaign pool.
        verticals: Categories the campaigns advertise (each campaign draws one uniformly).
        vertical_value: Factor on the margin per conversion, per vertical.
        vertical_competition: Factor on the competitor bid level, per vertical.
        market_utc_offsets: UTC offsets (hours, <= 0) of the markets (by default the UK,
            Brazil and the three mainland US time zones in winter); each campaign draws one
            uniformly and its day runs from local midnight.
        bid_multipliers: Bid multipliers on the base bid (the actions).
        daypart_hours: Hours one bid decision covers (a divisor of 24): the day has
            ``24 / daypart_hours`` dayparts, each with its own multiplier.
        hour_traffic: Relative auction volume per hour (normalised to shares of the day).
        hour_cvr: Conversion-rate factor per local hour (1: the campaign's own rate).
        hour_competition: Competitor bid-level factor per local hour.
        daily_opportunities_median: Median auctions per campaign-day (at multiplier 1 about
            0.4 are won: some 250 clicks and 13 conversions a day for the median campaign when
            the budget does not bind).
        ctr: Click-through rate of an impression.
        cvr_median: Median conversion rate of a click across campaigns.
        value_median: Median margin of a conversion across campaigns.
        base_bid_ratio_range: Range of base bid over value per click across campaigns.
        competition_sigma: Log-scale spread of the campaigns' competitor bid levels.
        daily_competition_sigma: Log-scale day-to-day variation of the competition level.
        comp_noise: Log-scale hour-to-hour noise of the competitor bid (not observed).
        win_slope: Steepness of the win probability in log(bid / competitor bid).
        pay_floor: Cost per click over bid when hardly ever winning.
        pay_slope: Extra cost per click over bid per unit of win probability.
        budget_ratio_range: Range of the daily budget over the spend at multiplier 1.
        behavior_pacing_gain: Multiplier change per unit of pacing gap.
        behavior_temperature: Softmax temperature of the behaviour policy (multiplier units).
        behavior_epsilon: Uniform exploration share.
    """

    n_campaigns: int = 1000
    verticals: tuple[str, ...] = CATEGORIES
    vertical_value: tuple[float, ...] = (1.3, 0.9, 1.0, 0.7, 1.1, 0.8)
    vertical_competition: tuple[float, ...] = (1.25, 0.9, 1.1, 1.05, 0.95, 0.85)
    market_utc_offsets: tuple[int, ...] = (0, -3, -5, -6, -8)
    bid_multipliers: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5)
    daypart_hours: int = 4
    hour_traffic: tuple[float, ...] = (
        1.0, 0.6, 0.4, 0.3, 0.3, 0.5, 1.0, 2.0, 3.0, 3.5, 3.5, 4.0, 4.5, 4.0, 3.5, 3.5, 4.0,
        4.5, 5.5, 6.5, 7.0, 6.0, 4.0, 2.0)
    hour_cvr: tuple[float, ...] = (
        0.6, 0.5, 0.5, 0.5, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.0, 1.0, 1.1, 1.0, 1.0, 1.0, 1.0,
        1.1, 1.2, 1.4, 1.5, 1.4, 1.1, 0.8)
    hour_competition: tuple[float, ...] = (
        0.8, 0.75, 0.7, 0.7, 0.7, 0.75, 0.85, 0.95, 1.0, 1.05, 1.05, 1.05, 1.1, 1.05, 1.0, 1.0,
        1.05, 1.1, 1.2, 1.3, 1.3, 1.2, 1.05, 0.9)
    daily_opportunities_median: float = 20000.0
    ctr: float = 0.03
    cvr_median: float = 0.05
    value_median: float = 30.0
    base_bid_ratio_range: tuple[float, float] = (0.6, 1.4)
    competition_sigma: float = 0.2
    daily_competition_sigma: float = 0.15
    comp_noise: float = 0.2
    win_slope: float = 3.0
    pay_floor: float = 0.55
    pay_slope: float = 0.35
    budget_ratio_range: tuple[float, float] = (0.5, 1.3)
    behavior_pacing_gain: float = 2.5
    behavior_temperature: float = 0.15
    behavior_epsilon: float = 0.1

    def __post_init__(self) -> None:
        n = len(self.verticals)
        if len(self.vertical_value) != n or len(self.vertical_competition) != n:
            raise ValueError("vertical_value and vertical_competition need one entry per vertical")
        for name in ("hour_traffic", "hour_cvr", "hour_competition"):
            if len(getattr(self, name)) != HOURS:
                raise ValueError(f"{name} needs {HOURS} entries, one per hour")
        if self.daypart_hours < 1 or HOURS % self.daypart_hours:
            raise ValueError(f"daypart_hours must divide {HOURS}")
        if not self.market_utc_offsets or any(
                o > 0 or o <= -HOURS for o in self.market_utc_offsets):
            raise ValueError("market_utc_offsets must be whole hours in (-24, 0]")


def feature_names() -> list[str]:
    """Names of the state features, in order."""
    return ["hour_frac", "hour_sin", "hour_cos", "budget_left_frac", "pacing_gap",
            "traffic_left", "cvr_factor", "value_ratio", "competition_ratio", "budget_ratio"]


@dataclass(frozen=True)
class CampaignPool:
    """Fixed attributes of every campaign (arrays indexed by campaign)."""

    opportunities: np.ndarray
    """Expected auctions per day."""
    cvr: np.ndarray
    """Conversion rate of a click (at an hour with factor 1)."""
    value: np.ndarray
    """Margin per conversion."""
    base_bid: np.ndarray
    """Bid per click at multiplier 1."""
    competition: np.ndarray
    """Usual competitor bid level over the base bid."""
    budget_ratio: np.ndarray
    """Daily budget over the planned spend."""
    vertical: np.ndarray
    """Index into ``AdsConfig.verticals``."""
    utc_offset: np.ndarray
    """UTC offset of the campaign's market in hours (<= 0)."""

    @property
    def n_campaigns(self) -> int:
        return int(self.cvr.shape[0])


@dataclass
class AdsBatch:
    """State of a batch of campaign-days at the start of ``hour``."""

    campaign: np.ndarray
    """Campaign index into the pool."""
    hour: np.ndarray
    """Local hour at which the next daypart starts (24 once the day is over)."""
    competition: np.ndarray
    """Today's competitor bid level over the base bid."""
    planned_spend: np.ndarray
    """Expected spend of the day at multiplier 1 under the usual competition."""
    budget: np.ndarray
    """Today's budget."""
    spent: np.ndarray
    """Spent so far today."""
    done: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


@dataclass(frozen=True)
class AdsStep:
    """Outcome of one daypart per campaign-day, summed over its hours (rows already done:
    zeros)."""

    bid: np.ndarray
    impressions: np.ndarray
    clicks: np.ndarray
    conversions: np.ndarray
    spend: np.ndarray
    value: np.ndarray
    exhausted: np.ndarray
    reward: np.ndarray
    done: np.ndarray


class AdsSimulator:
    """Vectorised dynamics of many campaign-days at once."""

    name = "ads"

    def __init__(self, world: World, config: AdsConfig | None = None) -> None:
        self.world = world
        self.config = config or AdsConfig()
        cfg = self.config
        self.n_actions = len(cfg.bid_multipliers)
        self.feature_names = feature_names()
        self.observation_size = len(self.feature_names)
        self.multipliers = np.asarray(cfg.bid_multipliers, dtype=np.float64)
        traffic = np.asarray(cfg.hour_traffic, dtype=np.float64)
        self.traffic = traffic / traffic.sum()
        self.traffic_before = np.r_[0.0, np.cumsum(self.traffic)[:-1]]
        self.hour_cvr = np.asarray(cfg.hour_cvr, dtype=np.float64)
        self.hour_comp = np.asarray(cfg.hour_competition, dtype=np.float64)
        self.daypart_hours = cfg.daypart_hours
        # per start hour: the traffic-weighted mean factors of the daypart it opens
        covered = (np.arange(HOURS)[None, :] >= np.arange(HOURS)[:, None]) & (
            np.arange(HOURS)[None, :] < np.arange(HOURS)[:, None] + cfg.daypart_hours)
        weight = covered * self.traffic[None, :]
        weight /= weight.sum(axis=1, keepdims=True)
        self.daypart_cvr = weight @ self.hour_cvr
        self.daypart_comp = weight @ self.hour_comp
        self.pool = self._make_pool()

    def _make_pool(self) -> CampaignPool:
        cfg = self.config
        n = cfg.n_campaigns
        rng = np.random.default_rng([self.world.config.seed, 3003])
        opp = cfg.daily_opportunities_median * rng.lognormal(0.0, 0.5, n)
        cvr = cfg.cvr_median * rng.lognormal(0.0, 0.3, n)
        value = cfg.value_median * rng.lognormal(0.0, 0.4, n)
        ratio = rng.uniform(*cfg.base_bid_ratio_range, n)
        comp = rng.lognormal(0.0, cfg.competition_sigma, n)
        budget_ratio = rng.uniform(*cfg.budget_ratio_range, n)
        # vertical and market from their own stream: the draws above do not depend on them
        place = np.random.default_rng([self.world.config.seed, 3004])
        vertical = place.integers(0, len(cfg.verticals), n)
        offset = np.asarray(cfg.market_utc_offsets, dtype=np.int64)[
            place.integers(0, len(cfg.market_utc_offsets), n)]
        value = value * np.asarray(cfg.vertical_value)[vertical]
        comp = comp * np.asarray(cfg.vertical_competition)[vertical]
        return CampaignPool(opportunities=opp, cvr=cvr, value=value,
                            base_bid=cvr * value * ratio, competition=comp,
                            budget_ratio=budget_ratio, vertical=vertical, utc_offset=offset)

    def expected_spend(self, campaign: np.ndarray, competition: np.ndarray) -> np.ndarray:
        """Expected spend of a whole day at multiplier 1 (ignoring the hourly noise)."""
        cfg = self.config
        p = self.pool
        comp = competition[:, None] * self.hour_comp[None, :]
        win = _sigmoid(cfg.win_slope * -np.log(comp))
        cpc = p.base_bid[campaign, None] * (cfg.pay_floor + cfg.pay_slope * win)
        clicks = p.opportunities[campaign, None] * self.traffic[None, :] * win * cfg.ctr
        return (clicks * cpc).sum(axis=1)

    # -- state ---------------------------------------------------------------------------
    def reset(self, n: int, rng: np.random.Generator) -> AdsBatch:
        """``n`` campaign-days of campaigns drawn uniformly from the pool."""
        return self.start_days(rng.integers(0, self.pool.n_campaigns, n), rng)

    def start_days(self, campaign: np.ndarray, rng: np.random.Generator) -> AdsBatch:
        """A new day for each of ``campaign``: today's competition level and budget."""
        cfg = self.config
        n = campaign.shape[0]
        comp = self.pool.competition[campaign] * rng.lognormal(
            0.0, cfg.daily_competition_sigma, n)
        # the budget is planned on the campaign's usual competition, not today's
        planned = self.expected_spend(campaign, self.pool.competition[campaign])
        budget = np.round(self.pool.budget_ratio[campaign] * planned, 2)
        return AdsBatch(campaign=campaign.astype(np.int64), hour=np.zeros(n, dtype=np.int64),
                        competition=comp, planned_spend=planned, budget=budget,
                        spent=np.zeros(n), done=np.zeros(n, dtype=bool))

    def budget_left(self, s: AdsBatch) -> np.ndarray:
        return np.maximum(s.budget - s.spent, 0.0)

    def observe(self, s: AdsBatch) -> np.ndarray:
        """Feature matrix ``[batch, observation_size]`` (float32)."""
        p = self.pool
        h = np.minimum(s.hour, HOURS - 1)
        angle = 2.0 * np.pi * h / HOURS
        return np.stack([
            h / (HOURS - 1), np.sin(angle), np.cos(angle),
            self.budget_left(s) / s.budget,
            s.spent / s.budget - self.traffic_before[h],
            1.0 - self.traffic_before[h],
            self.daypart_cvr[h],
            p.cvr[s.campaign] * p.value[s.campaign] / p.base_bid[s.campaign],
            s.competition * self.daypart_comp[h],
            s.budget / s.planned_spend,
        ], axis=1).astype(np.float32)

    def action_mask(self, s: AdsBatch) -> np.ndarray | None:
        """Every multiplier is always allowed."""
        return None

    def behavior_probs(self, s: AdsBatch) -> np.ndarray:
        """Behaviour policy's action probabilities ``[batch, n_actions]``."""
        cfg = self.config
        h = np.minimum(s.hour, HOURS - 1)
        gap = s.spent / s.budget - self.traffic_before[h]
        want = np.clip(1.0 - cfg.behavior_pacing_gain * gap, self.multipliers[0],
                       self.multipliers[-1])
        logit = -np.abs(self.multipliers[None, :] - want[:, None]) / cfg.behavior_temperature
        w = np.exp(logit - logit.max(axis=1, keepdims=True))
        w /= w.sum(axis=1, keepdims=True)
        return (1.0 - cfg.behavior_epsilon) * w + cfg.behavior_epsilon / self.n_actions

    # -- dynamics ------------------------------------------------------------------------
    def step(self, s: AdsBatch, action: np.ndarray, rng: np.random.Generator) -> AdsStep:
        """Runs one daypart of hourly auctions for every live campaign-day, in place."""
        cfg = self.config
        p = self.pool
        n = s.campaign.shape[0]
        live = ~s.done
        start = s.hour.copy()
        action = np.asarray(action, dtype=np.int64)
        bid = p.base_bid[s.campaign] * self.multipliers[action]
        total = {k: np.zeros(n) for k in ("spend", "value")}
        counts = {k: np.zeros(n, dtype=np.int64) for k in ("impressions", "clicks",
                                                             "conversions")}
        exhausted = np.zeros(n, dtype=bool)
        for offset in range(self.daypart_hours):
            active = live & ~exhausted & (start + offset < HOURS)
            h = np.minimum(start + offset, HOURS - 1)
            comp = (p.base_bid[s.campaign] * s.competition * self.hour_comp[h]
                    * rng.lognormal(0.0, cfg.comp_noise, n))
            win = _sigmoid(cfg.win_slope * np.log(bid / comp))
            opp = rng.poisson(p.opportunities[s.campaign] * self.traffic[h] * active)
            impressions = rng.binomial(opp, win)
            clicks = rng.binomial(impressions, cfg.ctr)
            cpc = bid * (cfg.pay_floor + cfg.pay_slope * win)
            left = self.budget_left(s)
            # the campaign stops when the budget cannot pay for the hour's clicks: only the
            # clicks (and a matching share of impressions) it still pays for are served
            out = active & (clicks * cpc >= left)
            paid = np.minimum(clicks, np.floor(left / cpc).astype(np.int64))
            impressions = np.where(out, np.floor(impressions * paid / np.maximum(clicks, 1)),
                                   impressions).astype(np.int64)
            spend = paid * cpc
            conversions = rng.binomial(paid, np.clip(p.cvr[s.campaign] * self.hour_cvr[h], 0, 1))
            s.spent = np.where(active, s.spent + spend, s.spent)
            counts["impressions"] += np.where(active, impressions, 0)
            counts["clicks"] += np.where(active, paid, 0)
            counts["conversions"] += np.where(active, conversions, 0)
            total["spend"] += np.where(active, spend, 0.0)
            total["value"] += np.where(active, conversions * p.value[s.campaign], 0.0)
            exhausted |= out
        s.hour = np.where(live, np.minimum(start + self.daypart_hours, HOURS), s.hour)
        done = ~live | exhausted | (s.hour >= HOURS)
        s.done = done.copy()
        reward = np.where(live, total["value"] - total["spend"], 0.0)
        return AdsStep(bid=bid, impressions=counts["impressions"], clicks=counts["clicks"],
                       conversions=counts["conversions"], spend=total["spend"],
                       value=total["value"], exhausted=exhausted,
                       reward=reward.astype(np.float64), done=done)


def heuristic_policy(sim: AdsSimulator) -> PolicyFn:
    """Bids for profit, paced: per daypart the multiplier with the highest expected profit
    per auction, ``win(m) * (value per click - cost per click(m))``, from the observed value
    ratio, conversion factor and competition ratio, one step lower while spending ahead of the
    traffic curve (a reference point that beats the behaviour policy).
    """
    cfg = sim.config
    idx = {name: i for i, name in enumerate(sim.feature_names)}
    mult = sim.multipliers[None, :]

    def policy(obs: np.ndarray) -> np.ndarray:
        vpc = (obs[:, idx["value_ratio"]] * obs[:, idx["cvr_factor"]])[:, None]
        comp = obs[:, idx["competition_ratio"]][:, None]
        win = _sigmoid(cfg.win_slope * np.log(mult / comp))
        profit = win * (vpc - mult * (cfg.pay_floor + cfg.pay_slope * win))
        best = profit.argmax(axis=1)
        ahead = obs[:, idx["pacing_gap"]] > 0.0
        return np.where(ahead, np.maximum(best - 1, 0), best).astype(np.int64)

    return policy


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# -- landing logs ----------------------------------------------------------------------------
EVENTS_PER_CAMPAIGN = 40.0
"""Clickstream events per active campaign, to turn ``events_per_day`` into campaigns: the
default 40,000 events a day run the whole pool of 1,000 campaigns. A campaign-day's return
is mostly conversion noise, so the nightly evaluation needs the 2,100 held-out campaign-days
of a 7-day window (30% of 7,000) to tell a policy that bids for profit from the pacing rule."""


def generate_ads(
    world: World, config: AdsConfig, day: dt.date, rng: np.random.Generator,
    events_per_day: int, logging: LoggingPolicy = SHOP,
) -> dict[str, pl.DataFrame]:
    """One campaign-day per active campaign whose local day starts on ``day`` (UTC date).

    The first ``events_per_day / EVENTS_PER_CAMPAIGN`` campaigns of the pool (at most all of
    them) run every day. A campaign's day starts at local midnight of its market, ``-offset``
    hours after UTC midnight, so campaigns west of UTC log their evening dayparts on the next
    UTC date. Each row is one daypart's bid decision with the bidder's decision context (the
    planning estimates the features are built from) and the daypart's delivery.
    """
    sim = logging.wrap(AdsSimulator(world, config))
    pool = sim.pool
    n = min(pool.n_campaigns, max(1, int(round(events_per_day / EVENTS_PER_CAMPAIGN))))
    campaign = np.arange(n)
    state = sim.start_days(campaign, rng)
    rec: dict[str, list[np.ndarray]] = {k: [] for k in (
        "alive", "hour", "action", "prob", "budget_left", "competitor_bid", "bid",
        "impressions", "clicks", "conversions", "spend", "value", "exhausted")}
    for _ in range(HOURS // sim.daypart_hours):
        alive = ~state.done
        if not alive.any():
            break
        h = np.minimum(state.hour, HOURS - 1)
        probs = sim.behavior_probs(state)
        action = sample_actions(probs, rng)
        rec["alive"].append(alive)
        rec["hour"].append(state.hour.copy())
        rec["action"].append(action)
        rec["prob"].append(probs[np.arange(n), action])
        rec["budget_left"].append(sim.budget_left(state))
        rec["competitor_bid"].append(pool.base_bid[campaign] * state.competition
                                     * sim.daypart_comp[h])
        out = sim.step(state, action, rng)
        for key, val in (("bid", out.bid), ("impressions", out.impressions),
                         ("clicks", out.clicks), ("conversions", out.conversions),
                         ("spend", out.spend), ("value", out.value),
                         ("exhausted", out.exhausted)):
            rec[key].append(val)
    arr = {k: np.stack(v) for k, v in rec.items()}  # [dayparts, n]
    keep = arr["alive"]
    k = np.broadcast_to(campaign[None, :], keep.shape)[keep]
    hour = arr["hour"][keep]
    midnight = int(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp()) * 1_000_000
    utc_hours = hour - pool.utc_offset[k]
    frame = pl.DataFrame({
        "campaign": pl.Series(k, dtype=pl.Int64),
        "vertical": np.asarray(sim.config.verticals)[pool.vertical[k]],
        "event_ts": midnight + utc_hours * 3_600_000_000 + rng.integers(0, 30_000_000, k.shape[0]),
        "hour": pl.Series(hour, dtype=pl.Int32),
        "end_hour": pl.Series(np.minimum(hour + sim.daypart_hours, HOURS), dtype=pl.Int32),
        "action": pl.Series(arr["action"][keep], dtype=pl.Int32),
        "bid_multiplier": sim.multipliers[arr["action"][keep]],
        "bid": arr["bid"][keep],
        "behavior_prob": arr["prob"][keep],
        "daily_budget": state.budget[k],
        "planned_spend": state.planned_spend[k],
        "budget_left": arr["budget_left"][keep],
        "traffic_share_elapsed": sim.traffic_before[hour],
        "cvr_factor": sim.daypart_cvr[hour],
        "value_per_click": pool.cvr[k] * pool.value[k],
        "competitor_bid_forecast": arr["competitor_bid"][keep],
        "impressions": arr["impressions"][keep],
        "clicks": arr["clicks"][keep],
        "conversions": arr["conversions"][keep],
        "spend": arr["spend"][keep],
        "conversion_value": arr["value"][keep],
        "budget_exhausted": arr["exhausted"][keep],
    }).with_columns(
        pl.col("event_ts").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        campaign_id=pl.format("cmp{}", pl.col("campaign").cast(pl.String).str.zfill(4)),
    ).with_columns(
        episode_id=pl.format("{}-{}", pl.lit(day.strftime("%Y%m%d")), pl.col("campaign_id")),
    ).with_columns(
        event_id=pl.format("{}-h{}", pl.col("episode_id"),
                           pl.col("hour").cast(pl.String).str.zfill(2)),
    ).sort("event_ts", "event_id")
    return {ADS.name: ADS.conform(frame, logging.name)}


SIMULATION = Simulation(config=AdsConfig(), make=AdsSimulator, generate=generate_ads)
"""The ads domain's part of the simulated shop."""
