"""Benchmarks: each stage side by side with the floor of what this machine can do.

``offline-rl bench`` (``make bench``) simulates clickstream days of the requested sizes and
times, in one run:

* ``ingestion``: the validated load (schema check, row rules, quarantine, dedup, atomic
  partition replace) vs a bare DuckDB ``CREATE TABLE AS SELECT * FROM read_parquet(...)``
  of the same files. Ratio = project events/s / bare events/s (goal >= 0.5).
* ``transitions``: the recommendation transitions query vs the floor of reading the events
  and sorting them by (session, time) in polars, and vs a plain pandas groupby/shift
  implementation of the same transform. Ratio = project / floor seconds (goal <= 1.5).
* ``training``: the pipeline's ``train_candidate`` vs d3rlpy's ``fit`` called directly on
  the same ``MDPDataset`` with the same config. Ratio = project / direct seconds (goal <= 1.05).
* ``ope``: IPW, SNIPW and DR with 1,000 bootstrap resamples; transition-resamples per second
  (goal >= 10M/s on 2 cores).
* ``end_to_end`` (``--end-to-end``): the nightly stages for one day of every registered
  domain (ingest, transitions, train, evaluate, gate, export), the domains side by side on
  ``--end-to-end-workers`` processes as the nightly job's executor runs them, with the peak
  resident memory of all of them together.

Every figure is measured; nothing is estimated or extrapolated.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import polars as pl

from offline_rl.bench_config import BenchConfig
from offline_rl.paths import DataPaths

DAY = dt.date(2026, 10, 1)
DAY_BEFORE = DAY - dt.timedelta(days=1)
"""The end-to-end run's completed day before ``DAY`` (its window's first day)."""
R = TypeVar("R")


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def peak_rss_mb() -> float:
    """Peak resident memory of this process and its finished children, in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024.0


def _pages(pid: int | str) -> int:
    """Resident pages of process ``pid`` (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _descendants(root: int) -> list[int]:
    """``root`` and every process below it, from ``/proc/<pid>/stat``'s parent ids."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # the command name may hold spaces and parentheses: the fields follow its last ")"
        children.setdefault(int(text.rsplit(")", 1)[1].split()[1]), []).append(
            int(stat.parent.name))
    found, frontier = [root], [root]
    while frontier:
        frontier = [c for pid in frontier for c in children.get(pid, [])]
        found += frontier
    return found


class StagePeaks:
    """The peak resident memory while each named stage runs, in MiB: a thread reads
    ``/proc/<pid>/statm`` every ``interval`` seconds (empty where there is none), of this
    process, or with ``tree`` of this process and all its descendants together (their list
    refreshed every second), so a stage run by worker processes is measured whole.

    Use ``with peaks.during(name):`` around a stage; ``peaks.mib`` holds the result.
    """

    def __init__(self, interval: float = 0.01, *, tree: bool = False) -> None:
        import os
        import threading

        self.mib: dict[str, float] = {}
        self._stage: str | None = None
        self._page_mib = os.sysconf("SC_PAGE_SIZE") / 2**20
        self._root, self._tree = os.getpid(), tree
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(interval,), daemon=True)
        if Path("/proc/self/statm").is_file():
            self._thread.start()

    def _sample(self, interval: float) -> None:
        pids: list[int | str] = ["self"]
        listed = 0.0
        while not self._stop.wait(interval):
            name = self._stage
            if name is None:
                continue
            if self._tree and time.monotonic() - listed > 1.0:
                pids, listed = list(_descendants(self._root)), time.monotonic()
            mib = sum(_pages(pid) for pid in pids) * self._page_mib
            self.mib[name] = max(self.mib.get(name, 0.0), mib)

    @contextlib.contextmanager
    def during(self, name: str) -> Iterator[None]:
        self._stage = name
        try:
            yield
        finally:
            self._stage = None

    def close(self) -> None:
        self._stop.set()


def write_clickstream_day(home: Path, events: int, seed: int = 0) -> int:
    """Writes about ``events`` clickstream events of ``DAY`` (and the next day's spill-over)
    as landing files in chunks; returns the number of events of ``DAY``."""
    from offline_rl.data.schemas import CLICKSTREAM
    from offline_rl.simulator.recommendation import SIMULATION, generate_clickstream
    from offline_rl.simulator.scenarios import get_scenario
    from offline_rl.simulator.world import make_world

    scen = get_scenario("default")
    world = make_world(scen.world)
    chunk = 1_000_000
    total = 0
    for i, start in enumerate(range(0, events, chunk)):
        rng = np.random.default_rng([seed, i])
        frame = generate_clickstream(world, SIMULATION.config, DAY, rng,
                                     min(chunk, events - start))[
            CLICKSTREAM.name]
        # distinct ids per chunk: the generator numbers sessions from 0 in each call
        frame = frame.with_columns(
            pl.concat_str(pl.lit(f"c{i}-"), pl.col(c)).alias(c)
            for c in ("event_id", "session_id", "ref_event_id"))
        dated = frame.with_columns(_date=pl.col("event_ts").dt.date())
        for (day,), part in dated.group_by("_date", maintain_order=True):
            folder = home / "landing" / CLICKSTREAM.name / f"date={day:%Y-%m-%d}"
            folder.mkdir(parents=True, exist_ok=True)
            part.drop("_date").write_parquet(folder / f"part-{i:04d}.parquet")
            if day == DAY:
                total += part.height
    return total


def bench_ingestion(paths: DataPaths) -> dict[str, Any]:
    import duckdb

    from offline_rl.data.schemas import CLICKSTREAM
    from offline_rl.pipeline import ingest_partition

    folder = paths.landing / CLICKSTREAM.name / f"date={DAY:%Y-%m-%d}"
    bare_db = paths.home / "bare.duckdb"

    def bare() -> int:
        con = duckdb.connect(str(bare_db))
        try:
            con.execute("DROP TABLE IF EXISTS raw")
            con.execute("CREATE TABLE raw AS SELECT * FROM read_parquet($glob)",
                        {"glob": str(folder / "*.parquet")})
            return int(con.execute("SELECT count(*) FROM raw").fetchall()[0][0])
        finally:
            con.close()

    reference_s, events = _timed(bare)
    project_s, load = _timed(lambda: ingest_partition(paths, CLICKSTREAM, DAY))
    if load.rows.height != events:
        raise RuntimeError(f"validated load kept {load.rows.height} of {events} events")
    bare_db.unlink(missing_ok=True)
    return {"events": events, "project_s": project_s, "reference_s": reference_s,
            "ratio": (events / project_s) / (events / reference_s),
            "project_events_per_s": events / project_s,
            "reference_events_per_s": events / reference_s,
            "goal": "ratio >= 0.5 (throughput vs bare DuckDB CTAS)"}


def _pandas_transitions(events: Any) -> Any:
    """The recommendation transform with plain pandas: groupby/cumsum/shift per session."""
    import pandas as pd

    ev = events
    clicks = ev[ev.event_type == "click"].groupby("ref_event_id").size().rename("n_clicks")
    buys = ev[ev.event_type == "purchase"].groupby("ref_event_id")["margin"].sum()
    imp = ev[ev.event_type == "impression"].copy()
    imp = imp.join(clicks, on="event_id").join(buys.rename("purchase_margin"), on="event_id")
    imp["clicked"] = imp["n_clicks"].fillna(0) > 0
    imp["purchase_margin"] = imp["purchase_margin"].fillna(0.0)
    imp = imp.sort_values(["session_id", "page", "event_ts"])
    g = imp.groupby("session_id", sort=False)
    imp["step"] = g.cumcount()
    feats = {}
    for c in range(6):
        this = (imp["category_id"] == c).astype("int32")
        hit = this * imp["clicked"].astype("int32")
        feats[f"f_shown_{c}"] = (this.groupby(imp["session_id"]).cumsum() - this) / 8.0
        feats[f"f_clicked_{c}"] = (hit.groupby(imp["session_id"]).cumsum() - hit) / 8.0
    feats["f_page_frac"] = imp["page"] / 8.0
    f = pd.DataFrame(feats, index=imp.index)
    nxt = f.groupby(imp["session_id"]).shift(-1).fillna(0.0).add_prefix("next_")
    imp["reward"] = 0.5 * imp["clicked"] + imp["purchase_margin"]
    return pd.concat([imp, f, nxt], axis=1)


def bench_transitions(paths: DataPaths) -> dict[str, Any]:
    from offline_rl.data.warehouse import Warehouse
    from offline_rl.domains import get_domain

    domain = get_domain("recommendation")
    wh = Warehouse(paths.warehouse)
    events = wh.read_partitions("raw_clickstream", DAY - dt.timedelta(days=1),
                                DAY + dt.timedelta(days=1))

    def floor() -> int:
        return events.lazy().sort("session_id", "event_ts").collect().height

    def project() -> int:
        return domain.build_day({"clickstream": events}, DAY,
                                DAY + dt.timedelta(days=1)).collect().height

    floor_s, _ = _timed(floor)
    project_s, n = _timed(project)
    pdf = events.to_pandas()
    pandas_s, _ = _timed(lambda: _pandas_transitions(pdf))
    return {"events": events.height, "transitions": n, "project_s": project_s,
            "reference_s": floor_s, "ratio": project_s / floor_s, "pandas_s": pandas_s,
            "pandas_ratio": pandas_s / project_s,
            "goal": "ratio <= 1.5 (vs polars read + sort by session, time)"}


def bench_training(paths: DataPaths, n_steps: int, device: str = "cpu") -> dict[str, Any]:
    import d3rlpy
    from d3rlpy.logging import NoopAdapterFactory

    from offline_rl.algos.training import (
        ALGORITHMS,
        TrainingConfig,
        seed_everything,
        train_candidate,
    )
    from offline_rl.pipeline import load_window

    window = load_window(paths, "recommendation", DAY, 1, 0.3, 0, settle_days=0)  # one day
    from offline_rl.data.arrays import to_mdp_dataset

    dataset = to_mdp_dataset(window.train, 6)
    config = TrainingConfig(n_steps=n_steps, seed=0, device=device, reward_scale=0.1)
    name = "double_dqn"

    def direct() -> None:
        import torch

        # the threads train_candidate uses on the CPU
        torch.set_num_threads(config.cpu_threads or torch.get_num_threads())
        seed_everything(0)
        algo = ALGORITHMS[name][1](config).create(device=device)
        algo.fit(dataset, n_steps=n_steps,
                 n_steps_per_epoch=min(config.steps_per_epoch, n_steps),
                 logger_adapter=NoopAdapterFactory(), show_progress=False,
                 save_interval=10**9)

    with tempfile.TemporaryDirectory() as tmp:
        direct()  # warm-up: first-use costs (allocator, kernels) count for neither side
        reference_s, _ = _timed(direct)
        project_s, _ = _timed(lambda: train_candidate(name, dataset, config, Path(tmp) / name))
    return {"events": int(len(window.train.actions)), "algorithm": name, "steps": n_steps,
            "batch_size": config.batch_size, "project_s": project_s, "reference_s": reference_s,
            "ratio": project_s / reference_s, "project_steps_per_s": n_steps / project_s,
            "reference_steps_per_s": n_steps / reference_s, "device": device,
            "d3rlpy": d3rlpy.__version__,
            "goal": "ratio <= 1.05 (vs d3rlpy fit on the same MDPDataset and config)"}


def bench_fqe(steps: int, device: str = "cpu", rows: int = 100_000, members: int = 9
              ) -> dict[str, Any]:
    """The torch FQE backend's batched ensemble as the nightly evaluation fits it (one fit
    and 8 refits in one network, batch 256, hidden 64x64) on ``rows`` synthetic logged
    decisions (20 features, 6 actions, 10-step episodes): gradient steps per second on
    ``device``."""
    from offline_rl.ope.fqe_torch import FQESettings, fit_fqe_ensemble

    rng = np.random.default_rng(0)
    features = rng.normal(size=(rows, 20))
    action = rng.integers(0, 6, rows)
    reward = rng.normal(size=rows)
    step = np.arange(rows) % 10
    next_index = np.where(step < 9, np.arange(rows) + 1, -1)
    probs = np.eye(6)[rng.integers(0, 6, rows)]
    weights = np.vstack([np.ones(rows), rng.poisson(1.0, (members - 1, rows)) + 1e-9])
    settings = FQESettings(steps=steps, device=device)

    def fit() -> Any:
        return fit_fqe_ensemble(features, action, reward, next_index, probs, weights,
                                horizon=10, settings=settings)

    fit()  # warm-up: allocator and kernels (on a GPU, its context) count once, not here
    seconds, _ = _timed(fit)
    return {"rows": rows, "members": members, "steps": steps, "device": device,
            "project_s": seconds, "steps_per_s": steps / seconds}


def bench_ope(n_transitions: int, n_bootstrap: int = 1000) -> dict[str, Any]:
    from offline_rl.ope.estimators import LoggedData, estimate

    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 9, n_transitions // 4)
    lengths = lengths[: np.searchsorted(np.cumsum(lengths), n_transitions)]
    n = int(lengths.sum())
    episode = np.repeat(np.arange(lengths.size), lengths)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    step = np.arange(n) - starts
    behavior = rng.uniform(0.1, 1.0, n)
    target = (rng.random(n) < 0.5).astype(float)
    reward = rng.exponential(1.0, n)
    q = reward + rng.normal(0, 0.1, n)
    data = LoggedData(episode=episode, step=step, reward=reward, behavior_prob=behavior,
                      target_prob=target, q_logged=q, v_target=q + 0.05)
    seconds, _ = _timed(lambda: estimate(data, ("ipw", "snipw", "dr"), n_bootstrap=n_bootstrap))
    rate = n * n_bootstrap / seconds
    return {"events": n, "episodes": int(lengths.size), "resamples": n_bootstrap,
            "estimators": ["ipw", "snipw", "dr"], "project_s": seconds,
            "reference_s": n * n_bootstrap / 10e6, "ratio": rate / 10e6,
            "transition_resamples_per_s": rate,
            "goal": ">= 10M transition-resamples/s (ratio >= 1)"}


def prepare_end_to_end(home: Path, events_per_day: int) -> int:
    """The logs :func:`bench_end_to_end` runs on: two simulated days with ``events_per_day``
    each, the first ingested; returns the events of the benchmarked (second) day. Run in its
    own process, so the simulator's memory is not counted as the night's."""
    from offline_rl.domains import landing_schemas
    from offline_rl.pipeline import ingest_partition
    from offline_rl.shop import write_landing

    paths = DataPaths(home)
    # the day before gives the window a completed day, as in production (multi-day episodes
    # of that day are completed by the benchmarked day's data)
    write_landing(home, days=1, start=DAY_BEFORE, seed=0, events_per_day=events_per_day)
    for schema in landing_schemas().values():
        ingest_partition(paths, schema, DAY_BEFORE)
    summary = write_landing(home, days=1, start=DAY, seed=1, events_per_day=events_per_day)
    return sum(summary.rows.values())


def _night_part(home: Path, domain: str | None, training: Any, ope: Any) -> dict[str, Any]:
    """One part of :func:`bench_end_to_end`'s night, in the nightly job's order, in this
    process: the day's ingestion (``domain`` None) or one domain's stages after it. Returns
    the seconds and this process's peak resident memory (MiB) of each stage."""
    from offline_rl.algos.config import DEFAULT_CANDIDATES
    from offline_rl.domains import get_domain, landing_schemas
    from offline_rl.monitor import MonitorConfig, monitor
    from offline_rl.ope.gate import GateConfig
    from offline_rl.pipeline import (
        build_transitions_partition,
        evaluate_candidates,
        export_promoted,
        ingest_partition,
        promote,
        train_candidates,
    )

    paths = DataPaths(home)
    stages: dict[str, float] = {}
    peaks = StagePeaks()

    # fn is called without arguments; "..." admits the lambdas whose defaults bind a loop variable
    def stage(name: str, fn: Callable[..., Any]) -> Any:
        with peaks.during(name):
            seconds, out = _timed(fn)
        stages[name] = stages.get(name, 0.0) + seconds
        return out

    if domain is None:
        for schema in landing_schemas().values():
            stage("ingestion", lambda s=schema: ingest_partition(paths, s, DAY))
    else:
        d = get_domain(domain)
        stage("transitions", lambda: build_transitions_partition(paths, d, DAY_BEFORE))
        stage("transitions", lambda: build_transitions_partition(paths, d, DAY))
        stage("monitor", lambda: monitor(paths, d, DAY, MonitorConfig()))
        stage("training", lambda: train_candidates(
            paths, d, DAY, list(DEFAULT_CANDIDATES), training,
            window_days=2, eval_fraction=0.3, settle_days=0))
        stage("evaluation", lambda: evaluate_candidates(paths, d, DAY, ope))
        stage("promotion", lambda: promote(paths, d, DAY, GateConfig()))
        stage("export", lambda: export_promoted(paths, d, DAY))
    peaks.close()
    return {"seconds": stages, "peak_mib": peaks.mib}


def bench_end_to_end(home: Path, events: int, n_steps: int = 0, workers: int = 0
                     ) -> dict[str, Any]:
    """The nightly stages for one day of every domain, as the nightly job runs them: the
    day's ingestion, then each domain's transitions, monitor, candidates, evaluation, gate and
    export, at the nightly job's settings (``n_steps`` > 0 replaces the training and FQE
    gradient steps), on the logs :func:`prepare_end_to_end` wrote (``events``: the day's
    events, reported). The domains run side by side on ``workers`` processes (0: one per
    core, the multiprocess executor's default ``max_concurrent``), in the registry's order;
    a worker takes the next domain when it is free. Two days of logs, so the window is two
    days with nothing held back to settle (the nightly job: seven, and each domain's
    lookahead); evaluation takes the held-out episodes of both days (``settle_days=0``),
    since two days hold no whole pricing season.

    Reported: the night's wall seconds; per stage the seconds summed over the domains (the
    work, whichever worker did it) and the highest resident memory one process reached in
    it; the seconds of the ingestion and of each domain's stages (``parts_s``); the night's
    peak resident memory of all its processes together (``peak_rss_mb``) and
    of the largest one (``process_peak_rss_mb``)."""
    import concurrent.futures
    import multiprocessing as mp
    import os

    from offline_rl.algos.config import DEFAULT_CANDIDATES, TrainingConfig
    from offline_rl.domains import all_domains
    from offline_rl.ope.evaluate import OPEConfig

    workers = workers or os.cpu_count() or 1
    training, ope = TrainingConfig(seed=0, device="cpu"), OPEConfig(device="cpu")
    if n_steps:
        training = dataclasses.replace(training, n_steps=n_steps)
        ope = dataclasses.replace(ope, fqe_steps=n_steps)
    names = [d.name for d in all_domains()]
    night = StagePeaks(tree=True)
    started = time.perf_counter()
    with night.during("night"), concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        parts = [pool.submit(_night_part, home, None, training, ope).result()]
        parts += list(pool.map(_night_part, [home] * len(names), names,
                               [training] * len(names), [ope] * len(names)))
    wall = time.perf_counter() - started
    night.close()
    stages: dict[str, float] = {}
    peaks: dict[str, float] = {}
    by_domain = {name: sum(part["seconds"].values()) for name, part in zip(
        ["ingestion", *names], parts, strict=True)}
    for part in parts:
        for name, seconds in part["seconds"].items():
            stages[name] = stages.get(name, 0.0) + seconds
            peaks[name] = max(peaks.get(name, 0.0), part["peak_mib"].get(name, 0.0))
    return {"events": events, "project_s": wall, "reference_s": 900.0, "ratio": wall / 900.0,
            "workers": workers, "stages_s": stages, "parts_s": by_domain,
            "peak_rss_mb": night.mib.get("night", peak_rss_mb()),
            "process_peak_rss_mb": peak_rss_mb(), "stages_peak_rss_mb": peaks,
            "settings": {"train_steps": training.n_steps, "fqe_steps": ope.fqe_steps,
                         "fqe_refits": ope.fqe_refits, "n_bootstrap": ope.n_bootstrap,
                         "candidates": list(DEFAULT_CANDIDATES)},
            "domains": names,
            "goal": "under 15 minutes (ratio <= 1) on 2 cores"}


def _in_child(fn: Callable[..., R], *args: Any) -> R:
    """Runs ``fn`` in a fresh process, so its peak memory is its own (not the earlier
    benchmarks'); the process may start processes of its own."""
    import concurrent.futures
    import multiprocessing as mp

    with concurrent.futures.ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def run_benchmarks(cfg: BenchConfig, progress: Callable[[str], None] | None = None
                   ) -> dict[str, Any]:
    say = progress or (lambda _msg: None)
    results: dict[str, Any] = {"machine": _machine(), "errors": {}}

    # fn is called without arguments; "..." admits the lambdas whose defaults bind a loop variable
    def measure(name: str, fn: Callable[..., Any], size: int | str | None = None) -> None:
        """Runs one benchmark into ``results[name]`` (per size or device if given); a failure is
        recorded (and reported) instead of losing the rest."""
        say(f"{name} ...")
        try:
            out = fn()
        except Exception as exc:  # noqa: BLE001 - reported in the table and the exit code
            label = name if size is None else f"{name} {size}"
            results["errors"][label] = f"{type(exc).__name__}: {exc}"
            say(f"{label} failed: {type(exc).__name__}: {exc}")
            return
        if size is None:
            results[name] = out
        else:
            results.setdefault(name, {})[str(size)] = out

    devices = ["cpu"] if cfg.device == "cpu" else ["cpu", cfg.device]

    def training(paths: DataPaths) -> dict[str, Any]:
        from offline_rl.pipeline import build_transitions_partition

        build_transitions_partition(paths, "recommendation", DAY)
        out = {d: bench_training(paths, cfg.train_steps, d) for d in devices}
        return out["cpu"] if len(out) == 1 else {**out[cfg.device], "cpu": out["cpu"]}

    for size in cfg.sizes:
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            paths = DataPaths(Path(tmp))
            say(f"simulating {size:,} clickstream events ...")
            write_clickstream_day(paths.home, size)
            measure("ingestion", lambda p=paths: bench_ingestion(p), size)
            measure("transitions", lambda p=paths: bench_transitions(p), size)
            if size == cfg.sizes[0]:
                measure("training", lambda p=paths: training(p))
    for device in devices:
        measure("fqe", lambda d=device: bench_fqe(cfg.fqe_steps, d), device)
    measure("ope", lambda: bench_ope(cfg.ope_transitions))
    if cfg.end_to_end:
        with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
            home = Path(tmp)
            say(f"simulating two days of {cfg.end_to_end_events:,} events ...")
            events = _in_child(prepare_end_to_end, home, cfg.end_to_end_events)
            measure("end_to_end", lambda: _in_child(
                bench_end_to_end, home, events, cfg.end_to_end_steps, cfg.end_to_end_workers))
    return results


def _machine() -> dict[str, Any]:
    import os
    import platform

    import torch

    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "cuda": torch.cuda.is_available(),
            "platform": platform.platform()}


def flatten_for_json(results: dict[str, Any]) -> dict[str, Any]:
    """``{"<benchmark>": {"events", "project_s", "reference_s", "ratio", ...}}``: per
    benchmark the largest size measured (all sizes stay under ``"by_size"``)."""
    out: dict[str, Any] = {"machine": results["machine"], "errors": results["errors"]}
    for name in ("ingestion", "transitions"):
        if name in results:
            by_size = results[name]
            largest = max(by_size, key=int)
            out[name] = {**by_size[largest], "by_size": by_size}
    for name in ("training", "fqe", "ope", "end_to_end"):
        if name in results:
            out[name] = results[name]
    return out


def format_table(results: dict[str, Any]) -> str:
    rows = [("benchmark", "events", "project s", "reference s", "ratio", "note")]
    for name in ("ingestion", "transitions"):
        for size, r in results.get(name, {}).items():
            note = (f"{r['project_events_per_s']:,.0f} vs {r['reference_events_per_s']:,.0f} ev/s"
                    if name == "ingestion" else f"pandas {r['pandas_s']:.2f}s "
                    f"({r['pandas_ratio']:.1f}x project)")
            rows.append((f"{name} ({int(size):,})", f"{r['events']:,}", f"{r['project_s']:.2f}",
                         f"{r['reference_s']:.2f}", f"{r['ratio']:.2f}", note))
    if "training" in results:
        r = results["training"]
        rows.append((f"training ({r['device']})", f"{r['events']:,}", f"{r['project_s']:.2f}",
                     f"{r['reference_s']:.2f}", f"{r['ratio']:.3f}",
                     f"{r['project_steps_per_s']:.0f} vs {r['reference_steps_per_s']:.0f} steps/s"))
    for device, r in results.get("fqe", {}).items():
        cpu = results["fqe"].get("cpu")
        vs = (f"; {r['steps_per_s'] / cpu['steps_per_s']:.1f}x the CPU"
              if cpu and device != "cpu" else "")
        rows.append((f"fqe ({device})", f"{r['rows']:,}", f"{r['project_s']:.2f}", "-", "-",
                     f"{r['steps_per_s']:.0f} steps/s, {r['members']} members{vs}"))
    if "cpu" in results.get("training", {}):
        r = results["training"]["cpu"]
        rows.append(("training (cpu)", f"{r['events']:,}", f"{r['project_s']:.2f}",
                     f"{r['reference_s']:.2f}", f"{r['ratio']:.3f}",
                     f"{r['project_steps_per_s']:.0f} vs {r['reference_steps_per_s']:.0f} "
                     "steps/s"))
    if "ope" in results:
        r = results["ope"]
        rows.append(("ope", f"{r['events']:,}", f"{r['project_s']:.2f}", "-",
                     f"{r['ratio']:.2f}", f"{r['transition_resamples_per_s'] / 1e6:.1f}M "
                     "transition-resamples/s"))
    e2e = results.get("end_to_end")
    if e2e:
        rows.append(("end_to_end", f"{e2e['events']:,}", f"{e2e['project_s']:.1f}", "900",
                     f"{e2e['ratio']:.2f}", f"{e2e['workers']} workers, peak RSS "
                     f"{e2e['peak_rss_mb']:.0f} MiB (largest process "
                     f"{e2e['process_peak_rss_mb']:.0f})"))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if e2e:
        peak_of = e2e["stages_peak_rss_mb"]
        lines.append("end_to_end stages (seconds summed over the domains): " + ", ".join(
            f"{name} {seconds:.1f} s (peak {peak_of[name]:.0f} MiB)"
            for name, seconds in e2e["stages_s"].items())
            + "; at " + ", ".join(f"{k} {v}" for k, v in e2e["settings"].items()))
        lines.append("end_to_end parts: " + ", ".join(
            f"{name} {seconds:.1f} s" for name, seconds in e2e["parts_s"].items()))
    m = results["machine"]
    lines += [f"FAILED {name}: {err}" for name, err in results.get("errors", {}).items()]
    return "\n".join(lines) + (f"\nmachine: {m['cpus']} CPUs, Python {m['python']}, torch "
                               f"{m['torch']}, CUDA {m['cuda']}, {m['platform']}")


def main_bench(cfg: BenchConfig, json_out: Path | None) -> int:
    results = run_benchmarks(cfg, progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(format_table(results))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(flatten_for_json(results), indent=2, default=str))
        print(f"json: {json_out}")
    return 1 if results["errors"] else 0
