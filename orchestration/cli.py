"""The installed ``offline-rl`` console script: the library's commands plus ``demo``.

``demo`` simulates logs, runs the nightly job in-process through Dagster (with the instance
in ``$DAGSTER_HOME``, default ``<data home>/dagster``, so ``make ui`` shows the runs), and
prints what was trained, estimated, decided and exported next to the simulator's truth.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from offline_rl.algos.config import TrainingConfig
from offline_rl.argtypes import iso_date, nonnegative_int, positive_int
from offline_rl.cli import (
    UsageError,
    add_simulation_args,
    build_parser,
    paths_from,
    run,
    simulate_logs,
)
from offline_rl.configuration import add_flag
from offline_rl.ope.evaluate import OPEConfig
from offline_rl.paths import DEFAULT_HOME, EXPORTS_ENV, HOME_ENV, DataPaths

DEMO_DAYS = 20
"""Days of logs the demo simulates: the nightly job trains on the last 7 start days and
evaluates on whole episodes of the 7 start days ending each domain's lookahead earlier (up to
13 days for a pricing season), so 7 + 13 days give every domain full windows."""

DEMO_EVENTS_PER_DAY = 80_000
"""Clickstream events a day in the demo (about 10,000 sessions and 1,200 carts): with half as
many, a week's ~1,300 held-out carts leave the gate's interval on a cart policy's gain wider
than the +10% it is worth (measured: the gate kept the incumbent at 40,000)."""


def _instance(paths: DataPaths) -> Any:
    import dagster as dg

    os.environ.setdefault("DAGSTER_HOME", str(paths.dagster_home))
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():  # a local instance for the demo and `make ui`: no telemetry
        config.write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    return dg.DagsterInstance.get()


class Progress:
    """Progress of a demo stage, driven by the Dagster runs' step events.

    Each finished step (one asset of one partition) prints a line with the stage's elapsed
    seconds and the steps left. On a terminal, a bar on the last line also shows the running
    step's latest log message (e.g. a candidate's training step), redrawn in place.
    """

    def __init__(self, total: int, stream: Any = None) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self.started = time.perf_counter()
        self.stream = stream if stream is not None else sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._bar = ""

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def on_event(self, entry: Any, partition: str) -> None:
        """Listener of a run's event log entries (``DagsterInstance.add_event_listener``)."""
        import dagster as dg

        event = entry.dagster_event
        if event is None:
            if self.tty and entry.step_key and entry.user_message:
                self._draw(f"{entry.step_key} {partition}: {entry.user_message}")
            return
        if event.event_type in (dg.DagsterEventType.STEP_SUCCESS,
                                dg.DagsterEventType.STEP_FAILURE):
            ok = event.event_type == dg.DagsterEventType.STEP_SUCCESS
            self.step_finished(event.step_key or "?", partition, ok)
        elif event.event_type == dg.DagsterEventType.STEP_START and self.tty:
            self._draw(f"{event.step_key} {partition}: started")

    def step_finished(self, step: str, partition: str, ok: bool) -> None:
        self.done += 1
        self.failed += 0 if ok else 1
        line = (f"      {self.done:>4}/{self.total} {step} {partition} "
                f"{'done' if ok else 'FAILED'}  ({self.elapsed():.0f} s elapsed, "
                f"{self.total - self.done} step(s) left)")
        self._clear()
        print(line, file=self.stream, flush=True)
        if self.tty and self.done < self.total:
            self._draw("")

    def _draw(self, text: str) -> None:
        width = 24
        filled = width * self.done // max(self.total, 1)
        bar = (f"      [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
               f"{self.elapsed():.0f} s {text}")[:119]
        self._clear()
        self.stream.write(bar)
        self.stream.flush()
        self._bar = bar

    def _clear(self) -> None:
        if self._bar:
            self.stream.write("\r" + " " * len(self._bar) + "\r")
            self._bar = ""


def job_selection(name: str, domains: list[str] | None = None) -> list[Any]:
    """The asset keys a demo run of job ``name`` executes (one step each): with ``domains``,
    only those domains' assets and the raw tables."""
    from orchestration.definitions import defs

    job = defs.resolve_job_def(name)
    keys = sorted(job.asset_layer.executable_asset_keys)
    if domains is None:
        return keys
    graph = defs.resolve_asset_graph()
    return [key for key in keys if graph.get(key).tags.get("domain") in domains
            or graph.get(key).group_name == "ingestion"]


def run_job(name: str, day: dt.date, run_config: dict[str, Any], instance: Any,
            verbose: bool = False, domains: list[str] | None = None,
            progress: Progress | None = None, cluster: str | None = None) -> None:
    """Executes job ``name`` for partition ``day`` in this process; raises if a step fails.

    With ``domains``, only those domains' assets (and the raw tables) are selected. With
    ``progress``, every step event of the run reaches it as it happens. With ``cluster`` (a
    Dask scheduler's address; the nightly job only), the job runs as ``nightly_dask``: each
    step a task on that cluster's workers, steps of different domains side by side.
    """
    import uuid

    from orchestration.definitions import defs

    job = defs.resolve_job_def(name)
    level = "DEBUG" if verbose else "WARNING"
    run_config = {**run_config, "loggers": {"console": {"config": {"log_level": level}}}}
    selection = None if domains is None else job_selection(name, domains)
    if cluster is not None:
        _run_on_dask(name, day, run_config, instance, selection, cluster)
        return
    run_id = str(uuid.uuid4())
    if progress is not None:
        instance.add_event_listener(
            run_id, lambda entry: progress.on_event(entry, day.isoformat()))
    result = job.execute_in_process(partition_key=day.isoformat(), run_config=run_config,
                                    instance=instance, raise_on_error=True,
                                    asset_selection=selection, run_id=run_id)
    if not result.success:
        raise RuntimeError(f"job {name} failed for {day}")


def _run_on_dask(name: str, day: dt.date, run_config: dict[str, Any], instance: Any,
                 selection: list[Any] | None, cluster: str) -> None:
    """``run_job`` of the nightly job on the Dask cluster at ``cluster``."""
    import dagster as dg

    from orchestration.definitions import nightly_dask_job_def

    if name != "nightly":
        raise ValueError(f"only the nightly job runs on a Dask cluster, not {name!r}")
    config = {**run_config,
              "execution": {"config": {"cluster": {"existing": {"address": cluster}}}}}
    with dg.execute_job(dg.reconstructable(nightly_dask_job_def), instance=instance,
                        run_config=config, tags={"dagster/partition": day.isoformat()},
                        asset_selection=selection) as result:
        if not result.success:
            failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
            why = "; ".join(f"{e.step_key}: {e.step_failure_data.error.message.strip()}"
                            for e in failures if e.step_failure_data and
                            e.step_failure_data.error) or "see the run's logs"
            raise RuntimeError(f"job nightly_dask failed for {day} (run {result.run_id}): "
                               f"{why}")


def demo_calendar(home: Path, days: list[dt.date], first_night: dt.date) -> Any:
    """The partition calendar for a demo of ``days`` whose nightly stages first run on
    ``first_night``: its first to its last day, widened to the data home's ``calendar.json``
    when that holds more days or earlier nights (so partitions an earlier run materialized
    stay). Written back to the home, where ``make ui``'s code location reads it, and set in
    this process's environment for the runs the demo makes."""
    from orchestration import partitions

    calendar = partitions.Calendar(days[0], days[-1], source="offline-rl demo",
                                   first_night=first_night)
    try:
        known = partitions.load_calendar({}, home)
    except ValueError:
        known = None  # malformed: the demo's days replace it
    if known is not None and known.source != "default":
        last = None if known.last_day is None else max(known.last_day, days[-1])
        calendar = partitions.Calendar(min(known.first_day, days[0]), last,
                                       source="offline-rl demo",
                                       first_night=min(known.nights_from, first_night))
    partitions.write_calendar(home, calendar)
    os.environ[partitions.FIRST_DAY_ENV] = calendar.first_day.isoformat()
    os.environ[partitions.FIRST_NIGHT_ENV] = calendar.nights_from.isoformat()
    if calendar.last_day is None:
        os.environ.pop(partitions.LAST_DAY_ENV, None)
    else:
        os.environ[partitions.LAST_DAY_ENV] = calendar.last_day.isoformat()
    return calendar


def nightly_run_config(*, n_steps: int, seed: int, fqe_steps: int, n_bootstrap: int,
                       device: str, domains: list[str] | None = None,
                       algorithms: list[str] | None = None,
                       fqe_refits: int | None = None) -> dict[str, Any]:
    """Run config of the nightly job: the same training and OPE settings for every domain
    (``fqe_refits`` None: the OPE asset's default)."""
    from offline_rl.domains import domain_names

    training: dict[str, Any] = {"n_steps": n_steps, "seed": seed, "device": device}
    if algorithms:
        training["algorithms"] = list(algorithms)
    ops: dict[str, Any] = {}
    for name in domains or domain_names():
        ops[f"{name}_candidates"] = {"config": dict(training)}
        ops[f"{name}_ope"] = {"config": {"fqe_steps": fqe_steps, "seed": seed,
                                         "n_bootstrap": n_bootstrap, "device": device}}
        if fqe_refits is not None:
            ops[f"{name}_ope"]["config"]["fqe_refits"] = fqe_refits
    return {"ops": ops}


def domain_truth(paths: DataPaths, domain: str, day: dt.date, scenario: str, seed: int,
                 episodes: int) -> dict[str, Any]:
    """One domain's candidates: estimates next to simulator truth (demo_summary.json layout)."""
    from offline_rl.algos.record import CandidateRecord
    from offline_rl.algos.training import load_candidate
    from offline_rl.domains import get_domain
    from offline_rl.pipeline import candidates_dir, read_decision, read_evaluations
    from offline_rl.simulator.base import true_value

    spec = get_domain(domain)
    sim = spec.make_simulator(scenario)
    behavior_est, evaluations, _ = read_evaluations(paths, spec, day)
    decision = read_decision(paths, spec, day)
    behavior_true = true_value(sim, "behavior", episodes=episodes, seed=seed)
    candidates: list[dict[str, Any]] = []
    for ev in evaluations:
        if ev.is_incumbent:
            continue
        directory = candidates_dir(paths, spec, day) / ev.name
        algo = load_candidate(directory)
        truth = true_value(sim, algo.predict, episodes=episodes, seed=seed)
        candidates.append({
            "name": ev.name,
            "algorithm": CandidateRecord.read(directory).algorithm,
            "true_value": truth.mean,
            "true_value_stderr": truth.stderr,
            "estimates": {k: {"value": e.value, "low": e.low, "high": e.high}
                          for k, e in ev.estimates.items()},
            "diagnostics": ev.diagnostics.as_dict(),
        })
    promoted_true = next((c["true_value"] for c in candidates
                          if c["name"] == decision.candidate), None)
    promoted_algorithm = next((c["algorithm"] for c in candidates
                               if c["name"] == decision.candidate), None)
    export = None
    if decision.export_version:
        export = str(paths.exports / spec.name / decision.export_version)
    return {
        "selection": selection_against_truth(behavior_true.mean, candidates, promoted_true,
                                             decision.headline_estimator),
        "behavior_true_value": behavior_true.mean,
        "behavior_true_value_stderr": behavior_true.stderr,
        "behavior_logged_value": behavior_est.as_dict(),
        "candidates": candidates,
        "decision": {"promoted": decision.promoted, "candidate": decision.candidate,
                     "algorithm": promoted_algorithm,
                     "reasons": list(decision.reasons)},
        "promoted_true_value": promoted_true,
        "export": export,
    }


def selection_against_truth(behavior_truth: float, candidates: list[dict[str, Any]],
                            promoted_truth: float | None, headline: str | None = None
                            ) -> dict[str, Any]:
    """Off-policy selection checked against truth: Spearman correlation of the headline
    estimates with the candidates' true values and the regret of the decision
    (``offline_rl.experiments.validation.figures.decision_regret``); None where undefined
    (fewer than three candidates, equal values, a behaviour value of 0), so the summary stays
    valid JSON."""
    from offline_rl.experiments.validation.figures import decision_regret, spearman
    from offline_rl.ope.gate import DEFAULT_HEADLINE

    headline = headline or DEFAULT_HEADLINE  # the estimator the domain's gate decided on
    truths = [c["true_value"] for c in candidates]
    estimates = [c["estimates"][headline]["value"] for c in candidates
                 if headline in c["estimates"]]
    rho = spearman(estimates, truths) \
        if len(candidates) >= 3 and len(estimates) == len(truths) else math.nan
    regret = decision_regret(behavior_truth, truths, promoted_truth)
    return {"estimator": headline,
            "rank_correlation": rho if math.isfinite(rho) else None,
            "decision_regret": regret if math.isfinite(regret) else None}


_REFIT_RESAMPLES = re.compile(r"paired on (\d+) refit resamples")

UNDEFINED_ESTIMATE = {
    "snpdis": "no logged episode followed the candidate's actions through every step, so a "
              "later step has no importance weight to normalise by",
    "replay": "the held-out episodes could not be replayed",
}
"""Why an estimator's value is undefined (NaN) in the demo's data, by estimator."""


def estimate_text(name: str, e: dict[str, Any]) -> str:
    """An estimate with its interval, or ``n/a`` and why when it is undefined (NaN)."""
    if not all(isinstance(e.get(k), (int, float)) and math.isfinite(e[k])
               for k in ("value", "low", "high")):
        return "     n/a   " + UNDEFINED_ESTIMATE.get(
            name, "undefined on these episodes (no finite value)")
    return f"{e['value']:>8.3f} [{e['low']:>8.3f}, {e['high']:>8.3f}]"


def print_summary(summary: dict[str, Any], wall: float) -> None:
    rows = []
    for domain, d in summary["domains"].items():
        print(f"\n== {domain} (seed {summary['seed']}) ==")
        b = d["behavior_logged_value"]
        print(f"behaviour policy: true value {d['behavior_true_value']:.3f}   logged on-policy "
              f"{b['value']:.3f} [{b['low']:.3f}, {b['high']:.3f}]")
        print(f"{'candidate':<12} {'algorithm':<12} {'true':>7}   "
              f"{'estimator':<7} {'estimate':>8} {'90% interval':>20}")
        for c in d["candidates"]:
            first = True
            for name in ("dm", "snpdis", "dr", "replay"):
                if name not in c["estimates"]:
                    continue
                e = c["estimates"][name]
                head = (f"{c['name']:<12} {c['algorithm']:<12} {c['true_value']:>7.3f}" if first
                        else " " * 34)
                print(f"{head}   {name:<7} " + estimate_text(name, e))
                first = False
        dec = d["decision"]
        print("decision: " + (f"PROMOTED {dec['candidate']}" if dec["promoted"]
                              else "kept the incumbent"))
        for r in dec["reasons"]:
            print(f"  - {r}")
        refits = next((m.group(1) for r in dec["reasons"]
                       if (m := _REFIT_RESAMPLES.search(r))), None)
        if refits is not None:
            print(f"    (the {refits} refit resamples are FQE's refits, each on a bootstrap "
                  "resample of the held-out episodes, with candidate and incumbent valued on "
                  "the same ones; the estimates' intervals above use "
                  + (f"{summary['n_bootstrap']} " if summary.get("n_bootstrap") else "")
                  + "bootstrap resamples of the episodes)")
        if d["promoted_true_value"] is not None:
            uplift = d["promoted_true_value"] / d["behavior_true_value"] - 1.0
            print(f"promoted policy true value {d['promoted_true_value']:.3f} vs behaviour "
                  f"{d['behavior_true_value']:.3f} ({uplift:+.1%})")
        sel = d["selection"]
        rho, regret = sel["rank_correlation"], sel["decision_regret"]
        print(f"selection against truth: rank correlation of {sel['estimator']} with the true "
              f"values {'n/a' if rho is None else f'{rho:+.2f}'}; the decision left "
              f"{'n/a' if regret is None else f'{regret:.1%}'} of the behaviour's true value "
              "on the table (decision regret: the best true value among the behaviour policy "
              "and the candidates, minus the deployed policy's)")
        print(f"export: {d['export'] or '(none)'}")
        promoted = d["promoted_true_value"]
        rows.append((domain, d["behavior_true_value"], promoted,
                     None if promoted is None else promoted / d["behavior_true_value"] - 1.0,
                     d["decision"]["algorithm"] or "(kept incumbent)"))
    print(f"\n== summary (seed {summary['seed']}, scenario {summary['scenario']}) ==")
    print(f"{'domain':<15} {'behaviour true':>14} {'promoted true':>14} {'uplift':>8}  algorithm")
    for domain, behavior, promoted, uplift, algorithm in rows:
        print(f"{domain:<15} {behavior:>14.3f} "
              + (f"{promoted:>14.3f} {uplift:>+8.1%}" if promoted is not None
                 else f"{'-':>14} {'-':>8}")
              + f"  {algorithm}")
    print(f"\nwall time {wall:.0f} s")


def chosen_domains(args: argparse.Namespace) -> list[str]:
    """``--domains`` (default: every domain); an unknown name is a usage error."""
    from offline_rl.domains import domain_names

    domains = list(args.domains or domain_names())
    unknown = sorted(set(domains) - set(domain_names()))
    if unknown:
        raise UsageError(f"unknown domain(s) {', '.join(unknown)}",
                         f"choose from {', '.join(domain_names())}")
    return domains


def cmd_demo(args: argparse.Namespace) -> int:
    from orchestration.loop import use_home

    started = time.perf_counter()
    paths = paths_from(args)
    domains = chosen_domains(args)
    days = [args.start + dt.timedelta(days=i) for i in range(args.days)]
    use_home(paths)  # the jobs' DataHome resource reads the data home from the environment
    stage_started: list[float] = []

    def stage(text: str | None) -> None:
        """Prints the time the previous stage took, then the next stage (None: the end)."""
        if stage_started:
            print(f"      done in {time.perf_counter() - stage_started.pop():.0f} s")
        if text is not None:
            stage_started.append(time.perf_counter())
            print(text, flush=True)

    print(f"data home: {paths.home}")
    calendar = demo_calendar(paths.home, days, first_night=days[-1])
    from orchestration.partitions import not_held

    why = not_held(days[0], days[-1], first_night=days[-1])
    if why:
        raise UsageError(why, "run the demo in a fresh process")
    print(f"partitions: days {calendar.first_day} to {calendar.last_day or 'today'}, nights "
          f"from {calendar.nights_from} (written to {paths.home / 'calendar.json'}; `make ui` "
          "reads it)")
    stage(f"[1/4] simulating {args.days} day(s) of logs from {args.start} (seed {args.seed}) ...")
    summary = simulate_logs(paths, args)
    print(f"      {sum(summary.rows.values()):,} rows in {summary.files} files")
    instance = _instance(paths)
    ingest_steps = len(job_selection("ingest"))
    transitions_steps = len(job_selection("transitions", domains))
    progress = Progress(len(days) * (ingest_steps + transitions_steps))
    stage(f"[2/4] ingesting {len(days)} partition(s) and building transitions (Dagster, "
          f"{progress.total} steps) ...")
    for day in days:
        run_job("ingest", day, {}, instance, args.verbose, progress=progress)
    for day in days:
        run_job("transitions", day, {}, instance, args.verbose, domains, progress=progress)
    progress = Progress(len(job_selection("nightly", domains)))
    stage(f"[3/4] nightly job for {days[-1]}: train, evaluate, gate, export "
          f"({', '.join(domains)}; {progress.total} steps) ...")
    run_job("nightly", days[-1], nightly_run_config(
        n_steps=args.n_steps, seed=args.seed, fqe_steps=args.fqe_steps,
        n_bootstrap=args.n_bootstrap, device=args.device, domains=domains),
        instance, args.verbose, domains, progress=progress)
    stage(f"[4/4] simulator truth ({args.truth_episodes} rollouts per policy) ...")
    result = {"seed": args.seed, "scenario": args.scenario, "partition": days[-1].isoformat(),
              "n_bootstrap": args.n_bootstrap,
              "domains": {d: domain_truth(paths, d, days[-1], args.scenario, args.seed,
                                          args.truth_episodes) for d in domains}}
    stage(None)
    wall = time.perf_counter() - started
    result["wall_seconds"] = round(wall, 1)
    out = paths.reports / "demo_summary.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print_summary(result, wall)
    print(f"summary: {out}")
    return 0


def build_full_parser() -> argparse.ArgumentParser:
    return build_parser(add_orchestration_commands)


def add_orchestration_commands(sub: Any) -> None:
    """Adds ``demo`` and ``loop`` (they run Dagster jobs) to ``offline-rl``'s sub-commands."""
    p = sub.add_parser("demo", help="simulate logs and run the whole nightly pipeline via Dagster")
    add_simulation_args(p, days_default=DEMO_DAYS, seed_help="seed of logs, training and OPE",
                        events_default=DEMO_EVENTS_PER_DAY)
    add_flag(p, TrainingConfig, "n_steps", type=positive_int)
    add_flag(p, OPEConfig, "fqe_steps", type=positive_int)
    add_flag(p, OPEConfig, "n_bootstrap", type=positive_int)
    p.add_argument("--truth-episodes", type=positive_int, default=20_000,
                   help="simulator rollouts per policy for the true values (default 20000)")
    add_flag(p, TrainingConfig, "device")
    p.add_argument("--domains", nargs="+", metavar="DOMAIN",
                   help="decision domains to train and gate (default: all)")
    p.set_defaults(handler=cmd_demo)

    p = sub.add_parser("loop", help="run N nights of the closed loop in the simulated shop: "
                                    "serve what is exported, learn from it, monitor it")
    add_loop_args(p)
    p.set_defaults(handler=cmd_loop)


def add_loop_args(p: argparse.ArgumentParser) -> None:
    """The options of ``offline-rl loop`` (defaults: ``orchestration.loop.LoopSettings``)."""
    from orchestration.loop import LoopSettings

    d = LoopSettings(nights=1, domains=())
    p.add_argument("--nights", type=positive_int, required=True, help="nights to run")
    p.add_argument("--domains", nargs="+", metavar="DOMAIN",
                   help="decision domains in the loop (default: all)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of logs, training and OPE")
    p.add_argument("--start", type=iso_date, default=d.start,
                   help=f"first warm-up day, YYYY-MM-DD (default {d.start})")
    p.add_argument("--warmup-days", type=positive_int, default=d.warmup_days,
                   help=f"days served by the shop's rule before the first night "
                        f"(default {d.warmup_days}: full windows for every domain)")
    p.add_argument("--events-per-day", type=positive_int, default=d.events_per_day,
                   help=f"approximate clickstream events per day (default {d.events_per_day})")
    p.add_argument("--scenario", default=d.scenario, help="simulator scenario")
    add_flag(p, TrainingConfig, "n_steps", d.n_steps, type=positive_int)
    add_flag(p, OPEConfig, "fqe_steps", d.fqe_steps, type=positive_int)
    add_flag(p, OPEConfig, "fqe_refits", d.fqe_refits, type=nonnegative_int)
    add_flag(p, OPEConfig, "n_bootstrap", d.n_bootstrap, type=positive_int)
    p.add_argument("--truth-episodes", type=positive_int, default=d.truth_episodes,
                   help=f"simulator rollouts per policy for true values "
                        f"(default {d.truth_episodes})")
    add_flag(p, TrainingConfig, "device", d.device)
    p.add_argument("--no-rollback", action="store_true",
                   help="the monitor only alerts; it never rolls a policy back")
    p.add_argument("--min-nights", type=positive_int, default=d.min_nights,
                   help=f"start days of evidence before an automatic rollback "
                        f"(default {d.min_nights})")
    p.add_argument("--workers", type=positive_int, default=d.workers,
                   help="local Dask worker processes the nightly job's steps run on, domains "
                        "side by side (default 1: in this process; more needs the dask "
                        "extra)")
    p.add_argument("--json", type=Path, help="also write the loop's record here")


def cmd_loop(args: argparse.Namespace) -> int:
    from orchestration.loop import LoopSettings, run_loop

    paths = paths_from(args)
    domains = tuple(chosen_domains(args))
    settings = LoopSettings(
        nights=args.nights, domains=domains, seed=args.seed, start=args.start,
        warmup_days=args.warmup_days, events_per_day=args.events_per_day,
        scenario=args.scenario, n_steps=args.n_steps, fqe_steps=args.fqe_steps,
        fqe_refits=args.fqe_refits, n_bootstrap=args.n_bootstrap,
        truth_episodes=args.truth_episodes, device=args.device,
        auto_rollback=not args.no_rollback, min_nights=args.min_nights, workers=args.workers)
    print(f"data home: {paths.home}")
    result = run_loop(paths, settings, verbose=args.verbose)
    print_loop_summary(result)
    print(f"record: {paths.reports / 'loop.json'}" + (f", plot: {paths.reports / 'loop.png'}"
                                                       if (paths.reports / 'loop.png').exists()
                                                       else ""))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    return 0


def print_loop_summary(result: dict[str, Any]) -> None:
    """Per domain: uplift, share of the best served policy's gain, promotions, rollbacks, bad
    nights, and how promises held (realized value inside the promised interval; true value as
    served above the promised lower end)."""
    def pct(x: float | None, spec: str = ".0%") -> str:
        return "n/a" if x is None else format(x, spec)

    print(f"\n{'domain':<15} {'nights':>6} {'uplift':>8} {'of best':>8} {'promoted':>8} "
          f"{'rollbacks':>9} {'bad':>4} {'bad twice':>9} {'coverage':>8} {'true>=low':>9}")
    for domain, s in result["summary"].items():
        print(f"{domain:<15} {s['nights']:>6} {pct(s['cumulative_uplift'], '+.1%'):>8} "
              f"{pct(s['share_of_hindsight_gain']):>8} {s['promotions']:>8} "
              f"{s['rollbacks']:>9} {s['bad_nights']:>4} {s['bad_nights_followed_by_bad']:>9} "
              f"{pct(s['promise_coverage']):>8} {pct(s.get('promise_true_above_low')):>9}")
    print(f"wall time {result['wall_seconds']:.0f} s")
    cost = night_cost(result.get("night_seconds") or [])
    if cost:
        nights, wall, cpu = cost.pop("nights"), cost.pop("wall"), cost.pop("cpu")
        print(f"a night, mean of the {nights:.0f} that served exports: {wall:.0f} s wall, "
              f"{cpu:.0f} s CPU of this process ("
              + ", ".join(f"{phase} {v:.0f} s" for phase, v in cost.items()) + ")")


def night_cost(timings: list[dict[str, Any]]) -> dict[str, float]:
    """The loop's mean cost of a night over the nights that served exports (the first night
    only runs the job on the warm-up days): ``nights``, wall and CPU seconds and each phase's
    wall seconds; empty before the second night."""
    served = timings[1:]
    if not served:
        return {}
    out = {"nights": float(len(served)), "wall": sum(t["wall"] for t in served) / len(served),
           "cpu": sum(t["cpu"] for t in served) / len(served)}
    for phase in served[0]["phases"]:
        out[phase] = sum(t["phases"].get(phase, 0.0) for t in served) / len(served)
    return out


READS_EXPORTS = frozenset({"exports", "predict"})
"""Commands that read the data home's export root."""


def data_home_note(args: argparse.Namespace) -> str | None:
    """For a command that reads exports: when the export folder does not exist, a note naming
    the data home it was looked for in, where that home came from, and how to point
    elsewhere; None when it exists, is remote, or the command does not read it."""
    if getattr(args, "command", None) not in READS_EXPORTS:
        return None
    paths = paths_from(args)
    exports = paths.exports
    if not isinstance(exports, Path) or exports.exists():
        return None
    if getattr(args, "home", None):
        source = "--home"
    elif os.environ.get(HOME_ENV):
        source = f"${HOME_ENV}"
    else:
        source = f"the default ./{DEFAULT_HOME} of the current directory"
    return (f"note: {exports} does not exist; data home {paths.home} ({source}). Point "
            f"elsewhere with --home DIR or {HOME_ENV}=DIR (the export root alone: --exports "
            f"or {EXPORTS_ENV})")


def _noting_data_home(handler: Any) -> Any:
    def noted(args: argparse.Namespace) -> int:
        note = data_home_note(args)
        if note:
            print(note, file=sys.stderr)
        return int(handler(args))

    return noted


def _wrap_handlers(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                handler = sub.get_default("handler")
                if handler is not None:
                    sub.set_defaults(handler=_noting_data_home(handler))
                _wrap_handlers(sub)


def main(argv: list[str] | None = None) -> int:
    parser = build_full_parser()
    _wrap_handlers(parser)
    return run(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
