"""Fault injection: corrupt landing files, kill the loader at random points, count what was lost.

    .venv/bin/python scripts/fault_injection.py --rounds 10 --seed 0

Each round simulates one day of every landing dataset into a temporary data home
(``offline_rl.shop.write_landing``), then damages the day's files at random:

* converts them to CSV, JSON lines or their gzip forms (mixed formats in one folder);
* breaks rows: null key, timestamp in the future, probability outside (0, 1], NaN, negative
  quantity or price, unknown category or action id, text in a numeric column;
* adds exact re-deliveries of some rows in another file and format;
* truncates files (Parquet and gzip become unreadable; text keeps its complete records),
  drops a column (schema drift) or leaves an empty file.

It then runs each stage (ingestion first) in a child process and kills the child, either at
a crash point inside the write (``$OFFLINE_RL_CRASH_AT``) or with SIGKILL after a random delay,
until a run completes. After every kill each dataset's partition must be exactly as before the
round or exactly as after it (a torn write is counted), and after completion the harness checks,
from its own record of what it wrote (not from the loader's counts):

* lost: a landing row that is neither in its raw table (by file and row number), nor in
  quarantine (its row, or its file rejected whole), nor a duplicate of an id that was loaded;
* duplicates in the tables: ids present more than once in a raw table;
* corrupted: a loaded row whose values differ from what the simulator produced, a row the
  harness broke that was loaded anyway, or a loaded row that no landing file holds.

It prints one line per round and the totals, and exits with status 1 if lost, duplicates,
torn writes or corrupted are not all 0.

Further stages (e.g. the nightly job) plug in with ``--stage package.module:NAME`` where
``NAME`` is a ``Stage`` (or a function returning one): ``run(paths, day)`` does the work in the
child process and returns counts to print, ``crash_points`` lists the points it can be killed
at, and ``verify(paths, day)`` returns the problems found once it has completed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import hashlib
import importlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from offline_rl.crash import CRASH_ENV  # noqa: E402
from offline_rl.data.ingest import load_partition  # noqa: E402
from offline_rl.data.rules import value_rules  # noqa: E402
from offline_rl.data.schemas import SOURCES, SourceSchema  # noqa: E402
from offline_rl.data.warehouse import Warehouse  # noqa: E402
from offline_rl.paths import DataPaths  # noqa: E402

START = dt.date(2026, 10, 1)

# stage modules import this file as ``fault_injection``: one module, one ``Stage`` class
sys.modules.setdefault("fault_injection", sys.modules[__name__])


# ---------------------------------------------------------------- stages

@dataclass(frozen=True)
class Stage:
    """One step run (and killed) in a child process each round.

    Attributes:
        name: Shown in the output.
        run: Does the work for one day in the child; returns counts (summed over rounds).
        crash_points: Names for ``$OFFLINE_RL_CRASH_AT`` inside the stage's writes.
        verify: Problems found after the stage completed (empty list: none); None to skip.
        watched: (table, key) of tables whose partition of the day must never be torn.
    """

    name: str
    run: Callable[[DataPaths, dt.date], dict[str, int]]
    crash_points: tuple[str, ...] = ()
    verify: Callable[[DataPaths, dt.date], list[str]] | None = None
    watched: tuple[str, ...] = ()


def _ingest(paths: DataPaths, day: dt.date) -> dict[str, int]:
    totals: dict[str, int] = {}
    for schema in SOURCES.values():
        load = load_partition(paths.landing, paths.warehouse, schema, day)
        for key, value in load.summary().items():
            totals[key] = totals.get(key, 0) + value
    return totals


INGEST = Stage(
    name="ingest",
    run=_ingest,
    crash_points=tuple(f"warehouse.{p}@{n}" for p in ("after_delete", "before_commit",
                                                      "after_commit")
                       for n in range(1, len(SOURCES) + 1)),
    watched=tuple(s.table for s in SOURCES.values()),
)


def resolve_stage(spec: str) -> Stage:
    """``ingest`` or ``package.module:NAME`` (a ``Stage`` or a function returning one)."""
    if spec == INGEST.name:
        return INGEST
    module, _, name = spec.partition(":")
    if not module or not name:
        raise SystemExit(f"error: --stage {spec!r}: expected package.module:NAME")
    found: Any = getattr(importlib.import_module(module), name)
    stage = found if isinstance(found, Stage) else found()
    if not isinstance(stage, Stage):
        raise SystemExit(f"error: --stage {spec!r} is not a Stage")
    return stage


# ---------------------------------------------------------------- the ledger

@dataclass
class Ledger:
    """What the harness wrote to one partition of one dataset."""

    schema: SourceSchema
    original: pl.DataFrame
    """The simulator's rows of the day, as generated (before any damage)."""
    rows: list[pl.DataFrame] = field(default_factory=list)
    """Per landing file: file, row_number, key and clean (the row's values are unmodified)."""

    def add(self, rel: str, keys: pl.Series, clean: np.ndarray) -> None:
        self.rows.append(pl.DataFrame({
            "file": [rel] * len(keys), "row_number": np.arange(1, len(keys) + 1),
            "key": keys.cast(pl.String), "clean": clean}))

    def frame(self) -> pl.DataFrame:
        if not self.rows:
            return pl.DataFrame(schema={"file": pl.String, "row_number": pl.Int64,
                                        "key": pl.String, "clean": pl.Boolean})
        return pl.concat(self.rows).with_columns(pl.col("row_number").cast(pl.Int64))


# ---------------------------------------------------------------- damage

FORMATS = (".parquet", ".csv", ".csv.gz", ".jsonl", ".jsonl.gz")


def _write(frame: pl.DataFrame, path: Path) -> None:
    if path.name.endswith(".parquet"):
        frame.write_parquet(path)
        return
    text = frame.write_csv() if ".csv" in path.name else frame.write_ndjson()
    data = text.encode()
    path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)


def _break_rows(frame: pl.DataFrame, schema: SourceSchema, rows: np.ndarray, kind: str,
                text_format: bool) -> pl.DataFrame:
    """``frame`` with ``rows`` given an invalid value of the given kind."""
    mask = pl.Series(np.isin(np.arange(frame.height), rows))
    rules = value_rules(schema)
    if kind == "null_key":
        return frame.with_columns(pl.when(mask).then(None).otherwise(pl.col(schema.key))
                                  .alias(schema.key))
    if kind == "future":
        far = dt.datetime(2099, 1, 1, tzinfo=dt.UTC)
        return frame.with_columns(pl.when(mask).then(pl.lit(far)).otherwise(
            pl.col(schema.time_column)).alias(schema.time_column))
    if kind == "probability" and schema.probability_column:
        c = schema.probability_column
        return frame.with_columns(pl.when(mask).then(1.5).otherwise(pl.col(c)).alias(c))
    floats = [c for c, t in schema.polars_schema.items() if t.is_float()]
    if kind == "nan" and floats and not text_format:
        c = floats[0]
        return frame.with_columns(pl.when(mask).then(float("nan")).otherwise(pl.col(c))
                                  .alias(c))
    negative = [c for c, r in rules.items() if r.minimum == 0 and r.allowed is None]
    if kind == "negative" and negative:
        c = negative[0]
        return frame.with_columns(pl.when(mask).then(pl.lit(-7).cast(frame.schema[c]))
                                  .otherwise(pl.col(c)).alias(c))
    categorical = [c for c, r in rules.items() if r.allowed is not None]
    if kind == "unknown" and categorical:
        c = categorical[0]
        value = pl.lit("unheard-of") if frame.schema[c] == pl.String() else pl.lit(999)
        return frame.with_columns(pl.when(mask).then(value.cast(frame.schema[c]))
                                  .otherwise(pl.col(c)).alias(c))
    numeric = [c for c, t in schema.polars_schema.items() if t.is_numeric()
               and c not in (schema.probability_column,)]
    if numeric:  # "wrong_type" and the fallback of kinds a dataset has no column for
        c = numeric[-1]
        return frame.with_columns(pl.when(mask).then(pl.lit("oops")).otherwise(
            pl.col(c).cast(pl.String)).alias(c))
    return frame.with_columns(pl.when(mask).then(None).otherwise(pl.col(schema.key))
                              .alias(schema.key))


ROW_DAMAGE = ("null_key", "future", "probability", "nan", "negative", "unknown", "wrong_type")


def damage_partition(folder: Path, landing: Path, schema: SourceSchema, rng: random.Random,
                     nprng: np.random.Generator, counts: dict[str, int]) -> Ledger:
    """Damages the simulated files of one partition at random and records what it wrote."""
    files = sorted(folder.glob("*.parquet"))
    original = pl.concat([pl.read_parquet(f) for f in files]) if files else \
        pl.DataFrame(schema=schema.polars_schema)
    ledger = Ledger(schema=schema, original=original)
    for path in files:
        frame = pl.read_parquet(path)
        path.unlink()
        suffix = rng.choice(FORMATS) if rng.random() < 0.6 else ".parquet"
        text_format = suffix != ".parquet"
        clean = np.ones(frame.height, dtype=bool)
        if frame.height and rng.random() < 0.7:
            for _ in range(rng.randint(1, 3)):
                kind = rng.choice(ROW_DAMAGE)
                rows = nprng.choice(frame.height, size=min(frame.height, rng.randint(1, 5)),
                                    replace=False)
                frame = _break_rows(frame, schema, rows, kind, text_format)
                clean[rows] = False
                counts[f"rows broken ({kind})"] = counts.get(f"rows broken ({kind})", 0) + \
                    len(rows)
        target = folder / (path.name.removesuffix(".parquet") + suffix)
        _write(frame, target)
        rel = target.relative_to(landing).as_posix()
        keys = frame[schema.key]
        fate = rng.random()
        if fate < 0.08:  # schema drift: a required column missing, the file is rejected whole
            required = [c for c in frame.columns if c not in schema.optional]
            _write(frame.drop(required[-1]), target)
            counts["files with a missing column"] = counts.get(
                "files with a missing column", 0) + 1
        elif fate < 0.2 and frame.height > 2:
            keys, clean = _truncate(target, frame, keys, clean, rng)
            counts["files truncated"] = counts.get("files truncated", 0) + 1
        ledger.add(rel, keys, clean)
        if frame.height and rng.random() < 0.3:  # a re-delivery of some rows
            picked = nprng.choice(original.height, size=min(original.height, 20), replace=False)
            again = original[np.sort(picked)]
            redelivery = folder / f"redelivery-{path.stem}{rng.choice(FORMATS)}"
            _write(again, redelivery)
            ledger.add(redelivery.relative_to(landing).as_posix(), again[schema.key],
                       np.ones(again.height, dtype=bool))
            counts["rows re-delivered"] = counts.get("rows re-delivered", 0) + again.height
    if rng.random() < 0.1:
        (folder / f"empty{rng.choice(FORMATS)}").write_bytes(b"")
        counts["empty files"] = counts.get("empty files", 0) + 1
    return ledger


def _truncate(path: Path, frame: pl.DataFrame, keys: pl.Series, clean: np.ndarray,
              rng: random.Random) -> tuple[pl.Series, np.ndarray]:
    """Cuts ``path`` short. Binary files become unreadable (all rows stay in the ledger, to be
    found rejected whole); plain text files keep the records before the cut, and the record
    cut through must be quarantined."""
    data = path.read_bytes()
    if path.suffix in (".parquet", ".gz"):
        path.write_bytes(data[: rng.randint(1, len(data) - 1)])
        return keys, clean
    header = 1 if path.name.endswith(".csv") else 0
    starts = [0]
    for line in data.split(b"\n")[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    record = rng.randint(1, frame.height)  # 1-based data row cut through
    begin, end = starts[record - 1 + header], starts[record + header] - 1
    path.write_bytes(data[: rng.randint(begin + 1, end)] if end > begin + 1 else data[:begin + 1])
    clean = clean[:record].copy()
    clean[record - 1] = False
    return keys.head(record), clean


# ---------------------------------------------------------------- checks

def _partition_state(paths: DataPaths, tables: tuple[str, ...], day: dt.date
                     ) -> dict[str, Any]:
    """Digest of each table's partition of the day, and of each source's quarantine rows
    (each source is replaced in its own transaction, so each must be before or after)."""
    wh = Warehouse(paths.warehouse)
    state: dict[str, Any] = {t: wh.digest(t, day) for t in tables}
    quarantine = wh.read_partitions("quarantine", day, day)
    for source in SOURCES:
        rows = quarantine.filter(pl.col("source") == source) if quarantine.height else quarantine
        state[f"quarantine:{source}"] = hashlib.sha256(
            rows.sort(rows.columns).write_csv().encode()).hexdigest() if rows.height else ""
    return state


def check_partition(paths: DataPaths, ledger: Ledger, day: dt.date) -> dict[str, int]:
    """Lost rows, duplicate ids and corrupted rows of one dataset's partition."""
    schema = ledger.schema
    wh = Warehouse(paths.warehouse)
    raw = wh.read_partitions(schema.table, day, day)
    if raw.is_empty():
        raw = pl.DataFrame(schema={**schema.polars_schema, "_source_file": pl.String,
                                   "_source_row": pl.Int64})
    quarantine = wh.read_partitions("quarantine", day, day).filter(
        pl.col("source") == schema.name) if wh.table_exists("quarantine") else pl.DataFrame(
        schema={"file": pl.String, "row_number": pl.Int64})
    written = ledger.frame()
    loaded = raw.select(file="_source_file", row_number="_source_row",
                        loaded_key=pl.col(schema.key), loaded=pl.lit(True))
    rows_q = quarantine.filter(pl.col("row_number").is_not_null()).select(
        "file", "row_number", quarantined=pl.lit(True))
    files_q = quarantine.filter(pl.col("row_number").is_null()).select(
        "file", rejected=pl.lit(True))
    loaded_keys = raw.select(key=pl.col(schema.key), dup_of_loaded=pl.lit(True)).unique()
    fate = (written.join(loaded, on=["file", "row_number"], how="left")
            .join(rows_q, on=["file", "row_number"], how="left")
            .join(files_q, on="file", how="left")
            .join(loaded_keys, on="key", how="left")
            .with_columns(pl.col("loaded", "quarantined", "rejected", "dup_of_loaded")
                          .fill_null(False)))
    lost = fate.filter(~(pl.col("loaded") | pl.col("quarantined") | pl.col("rejected")
                         | pl.col("dup_of_loaded"))).height
    bad_loaded = fate.filter(pl.col("loaded") & ~pl.col("clean")).height
    wrong_key = fate.filter(pl.col("loaded") & (pl.col("loaded_key") != pl.col("key"))).height
    phantom = loaded.join(written, on=["file", "row_number"], how="anti").height
    # values of clean loaded rows equal what the simulator produced
    names = schema.polars_schema.names()
    compared = raw.select(names).join(ledger.original.select(names), on=schema.key,
                                      how="left", suffix="_sim", nulls_equal=False)
    differs = pl.any_horizontal(
        [~pl.col(c).eq_missing(pl.col(f"{c}_sim")) for c in names if c != schema.key])
    clean_keys = fate.filter(pl.col("loaded") & pl.col("clean")).select(
        pl.col("key").alias(schema.key))
    changed = compared.join(clean_keys, on=schema.key, how="semi").filter(differs).height
    table = wh.read_partitions(schema.table, START, day)
    return {
        "written": written.height,
        "lost": lost,
        "duplicates_in_table": table.height - table[schema.key].n_unique() if table.height else 0,
        "duplicate_quarantine_rows": quarantine.height - quarantine.select(
            "file", "row_number").unique().height if quarantine.height else 0,
        "corrupted": bad_loaded + wrong_key + phantom + changed,
        "rows_in_rejected_files": fate.filter(pl.col("rejected")).height,
    }


# ---------------------------------------------------------------- running stages

def _worker(stage_spec: str, home: str, day: str) -> None:
    stage = resolve_stage(stage_spec)
    counts = stage.run(DataPaths(Path(home)), dt.date.fromisoformat(day))
    print(json.dumps(counts), flush=True)


def run_until_complete(stage: Stage, paths: DataPaths, day: dt.date, rng: random.Random,
                       state: dict[str, Any], max_attempts: int = 30) -> tuple[dict, int, int]:
    """Runs the stage in child processes, killing them at random, until one completes.

    Returns (the completed run's counts, kills, torn partitions).
    """
    stage_spec = stage.name if stage is INGEST else state["specs"][stage.name]
    before = _partition_state(paths, stage.watched, day) if stage.watched else None
    snapshots = []
    kills = 0
    for _ in range(max_attempts):
        env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
        env.setdefault("OMP_NUM_THREADS", "1")
        mode = rng.random()
        timer = None
        if mode < 0.4 and stage.crash_points:
            env[CRASH_ENV] = rng.choice(stage.crash_points)
        elif mode < 0.75:
            timer = rng.uniform(0.2, 1.0) * state.get(f"duration:{stage.name}", 3.0)
        started = time.monotonic()
        child = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", stage_spec,
             "--home", str(paths.home), "--day", day.isoformat()],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = child.communicate(timeout=timer)
        except subprocess.TimeoutExpired:
            os.kill(child.pid, signal.SIGKILL)
            out, err = child.communicate()
        if child.returncode == 0:
            state[f"duration:{stage.name}"] = time.monotonic() - started
            after = _partition_state(paths, stage.watched, day) if stage.watched else None
            torn = 0
            if before is not None:
                for snap in snapshots:
                    broken = [t for t in snap if snap[t] not in (before[t], after[t])]
                    for table in broken:
                        print(f"torn: {table} {day} after a kill", flush=True)
                    torn += len(broken)
            return json.loads(out.strip().splitlines()[-1]), kills, torn
        if child.returncode != -signal.SIGKILL:
            raise SystemExit(f"error: stage {stage.name} failed for {day}: "
                             f"{(err or out).strip().splitlines()[-1:]}")
        kills += 1
        if before is not None:
            snapshots.append(_partition_state(paths, stage.watched, day))
    raise SystemExit(f"error: stage {stage.name} did not complete in {max_attempts} attempts")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="days simulated (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of everything (default 0)")
    parser.add_argument("--events-per-day", type=int, default=20_000,
                        help="clickstream events simulated per day (default 20000)")
    parser.add_argument("--stage", action="append", default=[], metavar="MODULE:NAME",
                        help="a further Stage to run (and kill) after ingestion each round")
    parser.add_argument("--home", type=Path, default=None,
                        help="data home to use (default: a temporary folder, removed after)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--day", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker, str(args.home), args.day)
        return 0
    if args.rounds < 1 or args.events_per_day < 1:
        parser.error("--rounds and --events-per-day must be at least 1")
    stages = [INGEST, *(resolve_stage(s) for s in args.stage)]
    state: dict[str, Any] = {"specs": {s.name: spec for s, spec in zip(stages[1:], args.stage,
                                                                         strict=True)}}
    with tempfile.TemporaryDirectory(prefix="fault-injection-") as tmp:
        home = args.home or Path(tmp) / "home"
        return run_rounds(DataPaths(home.resolve()), stages, args, state)


def run_rounds(paths: DataPaths, stages: list[Stage], args: argparse.Namespace,
               state: dict[str, Any]) -> int:
    from offline_rl.shop import write_landing

    rng = random.Random(args.seed)
    nprng = np.random.default_rng(args.seed)
    totals: dict[str, int] = {}
    damage: dict[str, int] = {}
    problems: list[str] = []
    kills = torn = 0
    for r in range(args.rounds):
        day = START + dt.timedelta(days=r)
        write_landing(paths.home, days=1, start=day, seed=args.seed,
                      events_per_day=args.events_per_day)
        ledgers = []
        for schema in SOURCES.values():
            folder = paths.landing / schema.name / f"date={day:%Y-%m-%d}"
            folder.mkdir(parents=True, exist_ok=True)
            ledgers.append(damage_partition(folder, paths.landing, schema, rng, nprng, damage))
        round_kills = 0
        for stage in stages:
            counts, k, t = run_until_complete(stage, paths, day, rng, state)
            round_kills += k
            torn += t
            for key, value in counts.items():
                totals[f"{stage.name}:{key}"] = totals.get(f"{stage.name}:{key}", 0) + value
            if stage.verify is not None:
                problems += [f"{day} {stage.name}: {p}" for p in stage.verify(paths, day)]
        kills += round_kills
        checked: dict[str, int] = {}
        for ledger in ledgers:
            for key, value in check_partition(paths, ledger, day).items():
                checked[key] = checked.get(key, 0) + value
        for key, value in checked.items():
            totals[f"check:{key}"] = totals.get(f"check:{key}", 0) + value
        print(f"round {r + 1:>3} {day}  kills {round_kills:>2}  written {checked['written']:>6}  "
              f"lost {checked['lost']}  duplicates {checked['duplicates_in_table']}  "
              f"corrupted {checked['corrupted']}", flush=True)
    ingest = {k.split(":", 1)[1]: v for k, v in totals.items() if k.startswith("ingest:")}
    check = {k.split(":", 1)[1]: v for k, v in totals.items() if k.startswith("check:")}
    print()
    print(f"rounds                      {args.rounds}")
    print(f"kills survived              {kills}")
    print(f"rows written to landing     {check['written']}")
    print(f"rows read                   {ingest['rows_read']}")
    print(f"rows loaded                 {ingest['rows_loaded']}")
    print(f"rows quarantined            {ingest['rows_quarantined']}")
    print(f"duplicates dropped          {ingest['duplicates_dropped']}")
    print(f"files rejected whole        {ingest['files_rejected']} "
          f"({check['rows_in_rejected_files']} rows)")
    for name, value in sorted(damage.items()):
        print(f"  damage: {name:<30}{value}")
    for name, value in sorted(totals.items()):
        stage_name = name.split(":", 1)[0]
        if stage_name not in ("ingest", "check"):
            print(f"{name:<28}{value}")
    bad = {"lost": check["lost"],
           "duplicates in tables": check["duplicates_in_table"]
           + check["duplicate_quarantine_rows"],
           "torn writes": torn, "corrupted": check["corrupted"]}
    for name, value in bad.items():
        print(f"{name:<28}{value}")
    for problem in problems:
        print(f"problem: {problem}")
    failed = any(bad.values()) or bool(problems)
    print("FAILED" if failed else "OK: nothing lost, nothing duplicated, nothing corrupted")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
