"""``offline-rl loop``: the nightly loop, closed, in the simulated shop.

Night after night: the shop serves each domain with what ``exports/<domain>/latest`` names
(its own rule where nothing is promoted), logging the served policy's version and
propensities; the day's logs are ingested, the transitions of earlier days whose episodes the
day completes are rebuilt, and the nightly job runs (monitor, train, evaluate, gate, export)
through Dagster. Every episode is served by the policy that was live when it started.

Before the first night, ``warmup_days`` days are served by the shop's rule, so the first
night has full training and evaluation windows. Per night and domain the loop records the
served version, its true value as served (simulator rollouts of the serving head, common
random numbers with the shop's rule), the value its promotion promised, the monitor's
realized value, the gate's decision with the true values of the night's candidates, and any
rollback; at the end, per domain, the cumulative true value against the shop's rule and
against the best served policy in hindsight, and how well the headline estimator did on
nights with several loggers in the window against the first night.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from offline_rl.ope.evaluate import OPEConfig
from offline_rl.paths import EXPORTS_ENV, HOME_ENV, LANDING_ENV, DataPaths

MARGIN = 0.02
"""A served policy truly worse than the shop's rule by more than this share is a bad night
(the gate's default margin)."""


@dataclass(frozen=True)
class LoopSettings:
    """What the loop runs: ``nights`` nights after ``warmup_days`` days of the shop's rule."""

    nights: int
    domains: tuple[str, ...]
    seed: int = 0
    start: dt.date = dt.date(2026, 10, 1)
    warmup_days: int = 20
    events_per_day: int = 20_000
    scenario: str = "default"
    n_steps: int = 2000
    fqe_steps: int = OPEConfig.fqe_steps
    """FQE gradient steps per policy (default: the nightly job's)."""
    fqe_refits: int = OPEConfig.fqe_refits
    """FQE refits per policy (default: the nightly job's)."""
    n_bootstrap: int = 200
    truth_episodes: int = 5000
    device: str = "auto"
    auto_rollback: bool = True
    min_nights: int = 2
    workers: int = 1
    """Local Dask worker processes for the nightly job (1: it runs in this process)."""

    @property
    def days(self) -> list[dt.date]:
        total = self.warmup_days + self.nights - 1
        return [self.start + dt.timedelta(days=i) for i in range(total)]

    @property
    def nights_days(self) -> list[dt.date]:
        return self.days[self.warmup_days - 1:]


def use_home(paths: DataPaths) -> None:
    """Points the jobs' ``DataHome`` resource (read from the environment) at ``paths``."""
    os.environ[HOME_ENV] = str(paths.home)
    for name, value in ((LANDING_ENV, paths.landing_uri), (EXPORTS_ENV, paths.exports_uri)):
        if value:
            os.environ[name] = value


def loop_run_config(settings: LoopSettings) -> dict[str, Any]:
    """The nightly job's run config: the demo's training and OPE settings, and the monitor's
    rollback settings, for every domain of the loop."""
    from orchestration.cli import nightly_run_config

    config = nightly_run_config(n_steps=settings.n_steps, seed=settings.seed,
                                fqe_steps=settings.fqe_steps, n_bootstrap=settings.n_bootstrap,
                                device=settings.device, domains=list(settings.domains),
                                fqe_refits=settings.fqe_refits)
    for name in settings.domains:
        config["ops"][f"{name}_monitor"] = {"config": {
            "auto_rollback": settings.auto_rollback, "min_nights": settings.min_nights}}
    return config


class Truth:
    """True values in the simulated shop, cached by policy (an export version is immutable):
    every policy of a domain is rolled out on the same seed, so differences are paired."""

    def __init__(self, paths: DataPaths, settings: LoopSettings) -> None:
        self.paths = paths
        self.settings = settings
        self.cache: dict[tuple[str, str], float] = {}

    def simulator(self, domain: str) -> Any:
        from offline_rl.domains import get_domain

        return get_domain(domain).make_simulator(self.settings.scenario)

    def _value(self, domain: str, key: str, policy: Any) -> float:
        from offline_rl.simulator.base import true_value

        if (domain, key) not in self.cache:
            self.cache[(domain, key)] = true_value(
                self.simulator(domain), policy, episodes=self.settings.truth_episodes,
                seed=self.settings.seed).mean
        return self.cache[(domain, key)]

    def shop(self, domain: str) -> float:
        from offline_rl.simulator.base import BEHAVIOR

        return self._value(domain, "shop_rule", BEHAVIOR)

    def served(self, domain: str, version: str) -> float:
        """The value of ``version`` as served (its serving head), or of the shop's rule."""
        from offline_rl.data.schemas import SHOP_RULE
        from offline_rl.export.loader import load_latest
        from offline_rl.simulator.base import StochasticPolicy

        if version == SHOP_RULE:
            return self.shop(domain)
        if (domain, version) not in self.cache:
            policy = load_latest(self.paths.exports, domain, version)
            return self._value(domain, version, StochasticPolicy(policy.action_probs))
        return self.cache[(domain, version)]

    def candidates(self, domain: str, day: dt.date) -> dict[str, float]:
        """The greedy true value of each of the night's candidates (what the gate judged)."""
        from offline_rl.algos.training import load_candidate
        from offline_rl.pipeline import candidates_dir

        root = candidates_dir(self.paths, domain, day)
        out = {}
        for directory in sorted(p for p in root.iterdir() if (p / "model.d3").is_file()):
            algo = load_candidate(directory)
            out[directory.name] = self._value(domain, f"{day}/{directory.name}", algo.predict)
        return out


def night_record(paths: DataPaths, truth: Truth, domain: str, day: dt.date, served: str
                 ) -> dict[str, Any]:
    """What one night did in one domain, next to the truth."""
    from offline_rl.domains import get_domain
    from offline_rl.monitor import monitor_history, promise_of
    from offline_rl.pipeline import read_decision, read_evaluations

    spec = get_domain(domain)
    decision = read_decision(paths, spec, day)
    headline = decision.headline_estimator
    _, evaluations, _ = read_evaluations(paths, spec, day)
    candidates = truth.candidates(domain, day)
    estimates = {ev.name: ev.estimates[headline].value for ev in evaluations
                 if ev.name in candidates and headline in ev.estimates}
    loggers = window_loggers(paths, spec, day)
    rows = [r for r in monitor_history(paths, spec).to_dicts() if r["partition_date"] == day]
    monitor = rows[0] if rows else {}
    promise = promise_of(paths, spec, served) or {}
    return {
        "night": str(day),
        "served": served,
        "served_true": truth.served(domain, served),
        "window_loggers": loggers,
        "shop_true": truth.shop(domain),
        "promised": {k: promise.get(k) for k in ("estimator", "value", "low", "high")},
        "monitor": {k: monitor.get(k) for k in (
            "served", "last_start_day", "realized_value", "realized_low", "realized_high",
            "promised_value", "promised_low", "promised_high", "below_promise",
            "below_previous", "rolled_back_to")},
        "decision": {"promoted": decision.promoted,
                     "candidate": decision.candidate,
                     "export_version": decision.export_version,
                     "headline": headline,
                     "reason": decision.reason},
        "candidates": {name: {"true": candidates[name], "estimate": estimates.get(name)}
                       for name in candidates},
    }


def window_loggers(paths: DataPaths, domain: Any, day: dt.date) -> dict[str, int]:
    """Whole episodes per serving policy among those that started in the night's evaluation
    window (the days the gate's held-out episodes, a seeded share of them, come from), read
    from the window its candidates recorded."""
    from offline_rl.algos.record import CandidateRecord
    from offline_rl.data.warehouse import Warehouse
    from offline_rl.monitor import episode_returns
    from offline_rl.pipeline import candidates_dir

    root = candidates_dir(paths, domain, day)
    model_dir = next(root.glob("*/training.json")).parent
    split = CandidateRecord.read(model_dir).require_context(model_dir).split
    frame = Warehouse(paths.warehouse).read_partitions(
        domain.transitions_table, dt.date.fromisoformat(split.eval_start),
        dt.date.fromisoformat(split.eval_end))
    counts = episode_returns(frame).group_by("policy").len().sort("policy")
    return dict(zip(counts["policy"].to_list(), counts["len"].to_list(), strict=True))


def summarise(records: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per domain: cumulative true value against the shop's rule, the best served policy in
    hindsight and the best candidate of any night in hindsight (greedy, as the gate judged
    it; served with exploration it is worth somewhat less), bad nights and repeats,
    estimation quality on the first night, on the nights after it and on those of them whose
    evaluation window several policies logged, and how promises held: the share of monitor
    checks whose realized value (one day's episodes, with their own noise) fell inside the
    promised interval or above its lower end (what the monitor tests), and the share of
    nights served by a promoted export whose true value as served fell inside the promised
    interval or above its lower end."""
    from offline_rl.experiments.validation.figures import spearman

    out = {}
    for domain, nights in records.items():
        shop = nights[0]["shop_true"]
        served = np.array([n["served_true"] for n in nights])
        best = max([shop, *served])
        bad = served < shop * (1 - MARGIN) if shop > 0 else served > shop * (1 - MARGIN)
        repeats = int(np.sum(bad[1:] & bad[:-1]))
        gain = float(served.sum() - shop * len(nights))
        headroom = (best - shop) * len(nights)
        best_candidate = max([shop, *(c["true"] for n in nights
                                      for c in n["candidates"].values())])
        candidate_headroom = (best_candidate - shop) * len(nights)

        def quality(part: list[dict[str, Any]]) -> dict[str, float | None]:
            errors, rhos = [], []
            for n in part:
                pairs = [(c["estimate"], c["true"]) for c in n["candidates"].values()
                         if c["estimate"] is not None and math.isfinite(c["estimate"])]
                errors += [abs(e - t) / abs(t) for e, t in pairs if t]
                if len(pairs) >= 3:
                    rho = spearman([e for e, _ in pairs], [t for _, t in pairs])
                    if math.isfinite(rho):
                        rhos.append(rho)
            return {"median_relative_error": float(np.median(errors)) if errors else None,
                    "mean_rank_correlation": float(np.mean(rhos)) if rhos else None,
                    "nights": len(part)}

        checked = [n["monitor"] for n in nights
                   if n["monitor"].get("realized_value") is not None
                   and n["monitor"].get("promised_low") is not None]
        covered = [m["promised_low"] <= m["realized_value"] <= m["promised_high"]
                   for m in checked]
        promised = [(n["promised"], n["served_true"]) for n in nights
                    if (n.get("promised") or {}).get("low") is not None]
        out[domain] = {
            "nights": len(nights),
            "shop_true": shop,
            "cumulative_true": float(served.sum()),
            "cumulative_gain_over_shop": gain,
            "cumulative_uplift": gain / (abs(shop) * len(nights)) if shop else None,
            "best_served_true": best,
            "share_of_hindsight_gain": gain / headroom if headroom > 0 else None,
            "best_candidate_true": best_candidate,
            "share_of_best_candidate_gain": (gain / candidate_headroom
                                             if candidate_headroom > 0 else None),
            "bad_nights": int(bad.sum()),
            "bad_nights_followed_by_bad": repeats,
            "promotions": sum(n["decision"]["promoted"] for n in nights),
            "rollbacks": sum(bool(n["monitor"].get("rolled_back_to")) for n in nights),
            "alerts": sum(bool(n["monitor"].get("below_promise")
                               or n["monitor"].get("below_previous")) for n in nights),
            "estimation_first_night": quality(nights[:1]),
            "estimation_later_nights": quality(nights[1:]),
            "estimation_multi_logger_nights": quality(
                [n for n in nights[1:] if len(n.get("window_loggers") or {}) > 1]),
            "promise_coverage": float(np.mean(covered)) if covered else None,
            "promise_checks": len(covered),
            "promise_above_low": (float(np.mean([m["realized_value"] >= m["promised_low"]
                                                 for m in checked])) if checked else None),
            "promise_true_coverage": (float(np.mean([p["low"] <= t <= p["high"]
                                                     for p, t in promised]))
                                      if promised else None),
            "promise_true_above_low": (float(np.mean([t >= p["low"] for p, t in promised]))
                                       if promised else None),
            "promise_true_checks": len(promised),
        }
    return out


def _write_record(paths: DataPaths, settings: LoopSettings,
                  records: dict[str, list[dict[str, Any]]], started: float, *, complete: bool,
                  timings: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The loop's record so far, written to ``reports/loop.json`` after every night (a loop
    stopped early leaves the nights it ran; ``complete`` says whether all ran), with each
    night's wall and CPU seconds (CPU: this process's, all threads) and its wall seconds per
    phase: ``simulate`` (serving the day), ``ingest`` (ingest and transitions runs),
    ``nightly_job`` and ``truth_and_record`` (the simulator's true values and the record)."""
    result = {"settings": {**asdict(settings), "start": str(settings.start)},
              "complete": complete, "nights": records, "summary": summarise(records),
              "wall_seconds": round(time.perf_counter() - started, 1),
              "cpu_seconds": round(time.process_time(), 1),
              "night_seconds": timings or []}
    out = paths.reports / "loop.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    return result


def run_loop(paths: DataPaths, settings: LoopSettings, *, verbose: bool = False,
             say: Any = print) -> dict[str, Any]:
    """Runs the loop and returns its record (also written to ``reports/loop.json``)."""
    from offline_rl.shop import write_landing
    from orchestration.cli import Progress, _instance, demo_calendar, job_selection, run_job

    started = time.perf_counter()
    use_home(paths)
    days = settings.days
    demo_calendar(paths.home, days + [days[-1] + dt.timedelta(days=1)],
                  first_night=settings.nights_days[0])
    from offline_rl.domains import get_domain
    from orchestration.partitions import not_held

    why = not_held(days[0], days[-1], first_night=settings.nights_days[0])
    if why:
        raise ValueError(f"{why}; run the loop in a fresh process")

    lookahead = {d: get_domain(d).lookahead_days for d in settings.domains}
    instance = _instance(paths)
    warm = days[:settings.warmup_days]
    say(f"warm-up: {len(warm)} day(s) served by the shop's rule from {warm[0]} ...")
    write_landing(paths.home, days=len(warm), start=warm[0], seed=settings.seed,
                  events_per_day=settings.events_per_day, scenario=settings.scenario,
                  serve=paths.exports)
    progress = Progress(len(warm) * len(job_selection("ingest"))
                        + len(warm) * len(job_selection("transitions",
                                                         list(settings.domains))))
    for day in warm:
        run_job("ingest", day, {}, instance, verbose, progress=progress)
    for day in warm:  # the last warm-up day is the first night: its transitions too
        run_job("transitions", day, {}, instance, verbose, list(settings.domains),
                progress=progress)
    with _cluster(settings.workers) as cluster:
        return _nights(paths, settings, instance, verbose, say, started, lookahead, cluster)


@contextlib.contextmanager
def _cluster(workers: int) -> Iterator[str | None]:
    """The scheduler address of a local Dask cluster of ``workers`` single-threaded worker
    processes (started after the loop's environment is set, which they inherit), or None for
    one worker."""
    if workers <= 1:
        yield None
        return
    from orchestration.dask_executor import local_cluster

    with local_cluster(n_workers=workers, threads_per_worker=1, processes=True,
                       dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def rebuild_transitions(days: list[tuple[dt.date, list[str]]], instance: Any, verbose: bool,
                        cluster: str | None) -> None:
    """Runs the transitions job for each ``(day, domains)``: in this process, or with a
    cluster, one run per task on its workers side by side (the partitions are independent;
    each worker's runs use the instance ``DAGSTER_HOME`` names, which the loop set before it
    started them)."""
    from orchestration.cli import run_job

    if cluster is None:
        for day, domains in days:
            run_job("transitions", day, {}, instance, verbose, domains)
        return
    from dask.distributed import Client

    with Client(cluster) as client:
        futures = [client.submit(_transitions_on_worker, day, domains, verbose,
                                 key=f"transitions-{day}-{'-'.join(domains)}", pure=False)
                   for day, domains in days]
        client.gather(futures)  # raises the first run's error


def _transitions_on_worker(day: dt.date, domains: list[str], verbose: bool) -> None:
    import dagster as dg

    from orchestration.cli import run_job

    with dg.DagsterInstance.get() as instance:
        run_job("transitions", day, {}, instance, verbose, domains)


def _nights(paths: DataPaths, settings: LoopSettings, instance: Any, verbose: bool, say: Any,
            started: float, lookahead: dict[str, int], cluster: str | None) -> dict[str, Any]:
    """The loop's nights, after the warm-up."""
    from offline_rl.shop import write_landing
    from orchestration.cli import run_job

    truth = Truth(paths, settings)
    records: dict[str, list[dict[str, Any]]] = {d: [] for d in settings.domains}
    run_config = loop_run_config(settings)
    result: dict[str, Any] = {}
    timings: list[dict[str, Any]] = []
    for n, day in enumerate(settings.nights_days, start=1):
        night_started, night_cpu = time.perf_counter(), time.process_time()
        phases: dict[str, float] = {}
        if n == 1:
            served = {d: "shop_rule" for d in settings.domains}
        else:
            summary = write_landing(paths.home, days=1, start=day, seed=settings.seed,
                                    events_per_day=settings.events_per_day,
                                    scenario=settings.scenario, serve=paths.exports)
            served = {d: summary.served[d] for d in settings.domains}
            phases["simulate"] = time.perf_counter() - night_started
            run_job("ingest", day, {}, instance, verbose)
            # the day's transitions, and the earlier days' whose episodes (started up to each
            # domain's lookahead before) the day completes
            rebuild = [(day - dt.timedelta(days=earlier),
                        [d for d in settings.domains if lookahead[d] >= earlier])
                       for earlier in range(max(lookahead.values()), -1, -1)]
            rebuild_transitions(rebuild, instance, verbose, cluster)
            phases["ingest"] = time.perf_counter() - night_started - phases["simulate"]
        job_started = time.perf_counter()
        run_job("nightly", day, run_config, instance, verbose, list(settings.domains),
                cluster=cluster)
        phases["nightly_job"] = time.perf_counter() - job_started
        line = []
        for domain in settings.domains:
            record = night_record(paths, truth, domain, day, served[domain])
            records[domain].append(record)
            dec = record["decision"]
            line.append(f"{domain} {record['served']} true {record['served_true']:.4g}"
                        + (f" -> {dec['export_version']}" if dec["promoted"] else "")
                        + (" ROLLBACK" if record["monitor"].get("rolled_back_to") else ""))
        wall = time.perf_counter() - night_started
        phases["truth_and_record"] = wall - sum(phases.values())
        timings.append({"night": str(day), "wall": round(wall, 1),
                        "cpu": round(time.process_time() - night_cpu, 1),
                        "phases": {k: round(v, 1) for k, v in phases.items()}})
        say(f"night {n}/{settings.nights} {day} ({timings[-1]['wall']:.0f} s, "
            f"{timings[-1]['cpu']:.0f} s CPU): " + "; ".join(line))
        result = _write_record(paths, settings, records, started, complete=n == settings.nights,
                               timings=timings)
    try:
        from offline_rl.plots import loop_values

        (paths.reports / "loop.png").write_bytes(loop_values(records))
    except ValueError:
        pass
    return result
