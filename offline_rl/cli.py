"""``offline-rl``: the command line of the library (simulate, rollout, exports, schemas,
quarantine).

Commands that need Dagster (``demo``) are added by ``orchestration.cli``, which is the
installed console script; this module never imports dagster.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from offline_rl.argtypes import iso_date, nonnegative_int, positive_int
from offline_rl.paths import EXPORTS_ENV, HOME_ENV, LANDING_ENV, DataPaths, RemotePath

if TYPE_CHECKING:
    from offline_rl.domains import Domain

log = logging.getLogger("offline_rl")

Handler = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """A user error: printed as one line with a hint, exit code 2."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def paths_from(args: argparse.Namespace) -> DataPaths:
    return DataPaths.resolve(getattr(args, "home", None), landing=getattr(args, "landing", None),
                             exports=getattr(args, "exports", None))


# ------------------------------------------------------------------ simulate

def add_simulation_args(p: argparse.ArgumentParser, *, days_default: int | None,
                        seed_help: str, events_default: int = 40_000) -> None:
    """The options that say which logs to simulate (``simulate`` and ``demo``)."""
    if days_default is None:
        p.add_argument("--days", type=positive_int, required=True,
                       help="number of days to simulate")
    else:
        p.add_argument("--days", type=positive_int, default=days_default,
                       help=f"days of logs (default {days_default})")
    p.add_argument("--start", type=iso_date, default=dt.date(2026, 10, 1),
                   help="first day, YYYY-MM-DD (default 2026-10-01)")
    p.add_argument("--seed", type=int, default=0, help=seed_help)
    p.add_argument("--events-per-day", type=positive_int, default=events_default,
                   help=f"approximate clickstream events per day (default {events_default})")
    p.add_argument("--scenario", default="default", help="simulator scenario (default: default)")


def simulate_logs(paths: DataPaths, args: argparse.Namespace) -> Any:
    """Writes the landing files and the simulation manifest (scenario and seed, for truth)."""
    from offline_rl.shop import write_landing
    from offline_rl.simulator.truth import write_simulation_manifest

    serve = getattr(args, "serve", None)
    summary = write_landing(paths.home, days=args.days, start=args.start, seed=args.seed,
                            events_per_day=args.events_per_day, scenario=args.scenario,
                            serve=(serve or paths.exports) if serve is not None else None)
    write_simulation_manifest(paths.simulation_manifest, {
        "scenario": args.scenario, "seed": args.seed, "start": args.start, "days": args.days,
        "events_per_day": args.events_per_day})
    copy_to_landing(paths, summary.written)
    return summary


def copy_to_landing(paths: DataPaths, files: list[Path]) -> int:
    """Copies files the simulator wrote into the home's landing folder to a landing zone
    configured elsewhere (object storage or another folder), each file whole (one upload, or
    a hidden temporary renamed into place); returns the number copied."""
    local = paths.home / "landing"
    target = paths.landing
    if target == local:
        return 0
    for source in files:
        rel = source.relative_to(local).as_posix()
        if isinstance(target, RemotePath):
            (target / rel).fs.put_file(str(source), (target / rel).path)
            continue
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp")
        shutil.copyfile(source, tmp)
        tmp.replace(dest)
    return len(files)


def cmd_simulate(args: argparse.Namespace) -> int:
    paths = paths_from(args)
    summary = simulate_logs(paths, args)
    print(f"wrote {summary.files} landing files for {args.days} day(s) from {args.start} "
          f"into {paths.landing}")
    for name, rows in summary.rows.items():
        print(f"  {name:<22} {rows:>10,} rows")
    if getattr(args, "serve", None) is not None:
        print("served: " + ", ".join(f"{d} {v}" for d, v in summary.served.items()))
    return 0


# ------------------------------------------------------------------ rollout

def cmd_rollout(args: argparse.Namespace) -> int:
    from offline_rl.export.loader import ExportError, load_policy
    from offline_rl.export.registry import resolve_export
    from offline_rl.shop import policy_value
    from offline_rl.simulator.base import BEHAVIOR
    from offline_rl.simulator.truth import read_simulation_manifest

    registered_domain(args.domain)
    paths = paths_from(args)
    scenario = args.scenario
    if scenario is None:
        manifest = read_simulation_manifest(paths.simulation_manifest)
        scenario = manifest["scenario"] if manifest else "default"
    policy: Any = BEHAVIOR
    label = BEHAVIOR
    if args.policy != BEHAVIOR:
        try:
            loaded = load_policy(resolve_export(args.policy))
        except ExportError as exc:
            raise UsageError(str(exc), "pass an export directory (with manifest.json), a "
                                       "domain's latest pointer (exports/DOMAIN/latest) or "
                                       "'behavior'") from None
        if loaded.manifest.get("domain") not in (None, args.domain):
            raise UsageError(f"{args.policy} is a {loaded.manifest.get('domain')} policy, not "
                             f"{args.domain}")
        policy, label = loaded.predict, str(loaded.path)
    result = policy_value(args.domain, policy, scenario=scenario, episodes=args.episodes,
                          seed=args.seed)
    record = {"domain": args.domain, "policy": label, "scenario": scenario, "seed": args.seed,
              **result.as_dict()}
    print(f"{args.domain} / {label}: true mean return {result.mean:.4f} "
          f"± {result.stderr:.4f} (s.e., {result.episodes} episodes, scenario {scenario})")
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=2))
    return 0


# ------------------------------------------------------------------ schemas

def cmd_bench(args: argparse.Namespace) -> int:
    from offline_rl.bench import main_bench
    from offline_rl.bench_config import BenchConfig

    cfg = BenchConfig(sizes=tuple(args.sizes), train_steps=args.train_steps,
                      ope_transitions=args.ope_transitions, end_to_end=args.end_to_end,
                      end_to_end_events=args.end_to_end_events,
                      end_to_end_steps=args.end_to_end_steps,
                      end_to_end_workers=args.end_to_end_workers, fqe_steps=args.fqe_steps,
                      device=args.device)
    return main_bench(cfg, Path(args.json) if args.json else None)


def _emit(text: str, output: str | None) -> int:
    """Writes ``text`` to ``output`` if given, else prints it."""
    if output:
        Path(output).write_text(text)
    else:
        print(text)
    return 0


def _weight_share_doc(limit: float | None) -> str:
    """A domain's gate weight-share limit in words (``Domain.gate_max_weight_share``)."""
    from offline_rl.ope.gate import DEFAULT_MAX_WEIGHT_SHARE

    if limit is None:
        return f"default ({DEFAULT_MAX_WEIGHT_SHARE:.0%})"
    return ("off" if limit >= 1.0 else f"{limit:.0%}") + " (calibrated by `validate-ope`)"


def domains_markdown() -> str:
    """Every registered domain, from its ``Domain`` and its module's documentation."""
    import inspect

    from offline_rl.domains import all_domains, domain_module, landing_schemas
    from offline_rl.ope.replay import REPLAY

    schemas = landing_schemas()
    out = ["# Decision domains", "",
           "Generated from `offline_rl/domains/` (`offline-rl domains --output "
           "docs/domains.md`). Each domain is one module defining a `Domain`; every pipeline "
           "stage (ingestion, transitions, training, OPE, gate, export), the simulated shop "
           "and this page are generated from it.", ""]
    for d in all_domains():
        module = domain_module(d.name)
        replayed = d.gate_headline == REPLAY
        out += [f"## {d.name}", "", d.title, "",
                "- Landing data: "
                + ", ".join(f"`{s}` → `{schemas[s].table}`" for s in d.sources),
                f"- Transitions table: `{d.transitions_table}` (raw days read: "
                f"{d.lookback_days} before, {d.lookahead_days} after)",
                f"- Episode: {d.episode_doc}",
                f"- Reward: {d.reward_doc}",
                f"- Actions ({d.n_actions}): "
                + ", ".join(f"`{i}` {a}" for i, a in enumerate(d.action_names)),
                f"- Action mask: {', '.join(f'`{m}`' for m in d.mask_features) or 'none'}",
                "- Segment column (transfer): "
                + (f"`{d.segment_column}`" if d.segment_column else "none"),
                f"- Gate's headline estimator: `{d.gate_headline}`"
                + (f" (`{type(d.replay).__module__}`)" if replayed else ""),
                f"- Gate's weight-share limit: {_weight_share_doc(d.gate_max_weight_share)}"
                + (" (not applied to the replay headline)" if replayed else ""),
                f"- State features ({len(d.feature_names)}): "
                + ", ".join(f"`{f}`" for f in d.feature_names), ""]
        doc = inspect.getdoc(module)
        if doc:
            out += [doc, ""]
    return "\n".join(out)


def cmd_domains(args: argparse.Namespace) -> int:
    return _emit(domains_markdown(), args.output)


def cmd_transfer(args: argparse.Namespace) -> int:
    from offline_rl.experiments.transfer import TransferConfig, main_transfer
    from offline_rl.simulator.world import CATEGORIES

    if args.segment not in CATEGORIES:
        raise UsageError(f"unknown category {args.segment!r}",
                         f"choose one of: {', '.join(CATEGORIES)}")
    cfg = TransferConfig(domain=args.domain, segment=CATEGORIES.index(args.segment),
                         scenario=args.scenario, algorithm=args.algorithm,
                         small_episodes=args.small_episodes, pool_episodes=args.pool_episodes,
                         plenty_episodes=args.plenty_episodes, n_steps=args.n_steps,
                         finetune_steps=args.finetune_steps,
                         truth_episodes=args.truth_episodes, seeds=tuple(args.seeds))
    return main_transfer(cfg, Path(args.json) if args.json else None,
                         progress=lambda m: print(m, file=sys.stderr, flush=True))


def cmd_schemas(args: argparse.Namespace) -> int:
    from offline_rl.data.schemas import schemas_markdown
    from offline_rl.domains import landing_schemas

    return _emit(schemas_markdown(landing_schemas()), args.output)


# ------------------------------------------------------------------ quarantine

_RECORD_CHARS = 80
"""Characters of a raw record shown in the quarantine listing (the JSON output has it whole)."""


def _cut(text: str | None, limit: int) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def cmd_quarantine(args: argparse.Namespace) -> int:
    """Lists the warehouse's ``quarantine`` table: every row is a quarantined row (with its
    1-based row number in its file) or a file rejected whole (no row number)."""
    from offline_rl.data.ingest import QUARANTINE_TABLE
    from offline_rl.data.warehouse import Warehouse
    from offline_rl.domains import landing_schemas

    schemas = landing_schemas()
    if args.dataset is not None and args.dataset not in schemas:
        raise UsageError(f"unknown dataset {args.dataset!r}",
                         f"choose one of: {', '.join(schemas)}")
    paths = paths_from(args)
    hint = (f"ingest a day first (dagster asset materialize), or point --home / ${HOME_ENV} "
            "at the data home that holds the warehouse")
    if not paths.warehouse.is_file():  # checked first: opening would create an empty one
        raise UsageError(f"no warehouse in data home {paths.home} (looked for "
                         f"{paths.warehouse})", hint)
    wh = Warehouse(paths.warehouse)
    if not wh.table_exists(QUARANTINE_TABLE):
        raise UsageError(f"no quarantine table in the warehouse {paths.warehouse} of data home "
                         f"{paths.home}: no landing partition has been ingested", hint)
    filters = {"dataset": args.dataset, "day": args.day}
    summary = wh.query("quarantine/summary", **filters)
    rows = wh.query("quarantine/select_rows", limit=args.limit, **filters)
    total = int(summary["n"].sum()) if summary.height else 0
    quarantined = int(summary["rows"].sum()) if summary.height else 0
    where = ", ".join(f"{k} {v}" for k, v in filters.items() if v is not None)
    heading = f"quarantine of {paths.warehouse}" + (f" ({where})" if where else "")
    if args.json:
        record = {"warehouse": str(paths.warehouse), "dataset": args.dataset,
                  "day": str(args.day) if args.day else None, "total": total,
                  "rows_quarantined": quarantined, "files_rejected": total - quarantined,
                  "rows": rows.with_columns(rows["day"].cast(str)).to_dicts(),
                  "summary": summary.with_columns(summary["day"].cast(str)).to_dicts()}
        Path(args.json).write_text(json.dumps(record, indent=2))
    if not total:
        print(f"{heading}: nothing quarantined")
        return 0
    print(f"{heading}: {quarantined} quarantined row(s), {total - quarantined} rejected "
          "file(s)\n")
    width = max(len("file"), *(len(f) for f in summary["file"].head(args.limit)),
                *(len(f) for f in rows["file"]))
    print(f"{'file':<{width}}  {'row':>6}  reason  |  record")
    for file, row, reason, record in rows.select("file", "row_number", "reason",
                                                 "record").iter_rows():
        number = "file" if row is None else str(row)
        shown = f"  |  {_cut(record, _RECORD_CHARS)}" if record else ""
        print(f"{file:<{width}}  {number:>6}  {reason}{shown}")
    if rows.height < total:
        print(f"showing {rows.height} of {total} (--limit to see more)")
    print("\nby file and reason:")
    print(f"{'count':>7}  {'file':<{width}}  reason")
    for file, reason, n in summary.head(args.limit).select("file", "reason", "n").iter_rows():
        print(f"{n:>7}  {file:<{width}}  {_cut(reason, 200)}")
    if summary.height > args.limit:
        print(f"{summary.height - args.limit} more file/reason group(s) (--limit, --json)")
    return 0


# ------------------------------------------------------------------ parser

def build_parser(more_commands: Callable[[Any], None] | None = None
                 ) -> argparse.ArgumentParser:
    """The ``offline-rl`` parser; ``more_commands(subparsers)`` adds the commands of another
    layer (``orchestration.cli`` adds ``demo`` and ``loop``) to its sub-commands."""
    parser = argparse.ArgumentParser(
        prog="offline-rl",
        description="Offline RL for an online shop: simulate logs, run the nightly pipeline, "
                    "evaluate and export policies.",
        epilog=f"The data home is --home, else ${HOME_ENV}, else ./.data. The landing zone and "
               f"the exports may be elsewhere, also on object storage (--landing, ${LANDING_ENV}; "
               f"--exports, ${EXPORTS_ENV}; any fsspec URI such as s3://bucket/landing).",
    )
    parser.add_argument("--home", help=f"data home (default: ${HOME_ENV} or ./.data)")
    parser.add_argument("--landing", metavar="URI",
                        help=f"landing zone, a folder or fsspec URI (default: ${LANDING_ENV} or "
                             "<home>/landing)")
    parser.add_argument("--exports", metavar="URI",
                        help=f"export root, a folder or fsspec URI (default: ${EXPORTS_ENV} or "
                             "<home>/exports)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress at INFO")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                parser_class=CommandParser)

    p = sub.add_parser("simulate", help="write simulated landing files into the data home")
    add_simulation_args(p, days_default=None, seed_help="seed of the logs (default 0)")
    p.add_argument("--serve", nargs="?", const="", default=None, metavar="EXPORTS",
                   help="serve each domain's decisions with the export that EXPORTS' latest "
                        "names (default: the data home's exports), logging its serving "
                        "head's propensities; the shop's own rule where nothing is promoted")
    p.set_defaults(handler=cmd_simulate)

    p = sub.add_parser("rollout", help="true value of a policy by simulator rollouts")
    p.add_argument("--domain", default="recommendation",
                   help="a registered decision domain (offline-rl domains lists them; "
                        "default recommendation)")
    p.add_argument("--policy", required=True,
                   help="an export directory (a folder or fsspec URI), a domain's latest "
                        "pointer (e.g. .data/exports/cart/latest: the version it names), or "
                        "'behavior'")
    p.add_argument("--episodes", type=positive_int, default=20_000, help="rollouts (default 20000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the rollouts")
    p.add_argument("--scenario", default=None,
                   help="simulator scenario (default: the one that wrote the data home's logs)")
    p.add_argument("--json", metavar="OUT", help="also write the result as JSON")
    p.set_defaults(handler=cmd_rollout)

    p = sub.add_parser("transfer", help="transfer to a new segment: scratch vs warm start vs "
                       "plenty of data, valued by the simulator",
                       description="Trains a policy for a new segment (a pricing category) "
                                   "from its few days of data, from scratch and warm-started "
                                   "from a model of the other segments, and compares their "
                                   "true values with the behaviour policy and with a model "
                                   "trained on plenty of the segment's data.")
    p.add_argument("--domain", default="pricing", choices=["pricing"],
                   help="decision domain with a segment split (default pricing)")
    p.add_argument("--segment", default="electronics", help="the new category "
                   "(default electronics)")
    p.add_argument("--scenario", default="default", help="simulator scenario (default: default)")
    p.add_argument("--algorithm", default="cql", help="candidate to train (default cql)")
    p.add_argument("--small-episodes", type=positive_int, default=150,
                   help="episodes of the new segment's small data (default 150)")
    p.add_argument("--pool-episodes", type=positive_int, default=6000,
                   help="episodes of the other segments' data (default 6000)")
    p.add_argument("--plenty-episodes", type=positive_int, default=6000,
                   help="episodes of the new segment for the plenty-of-data reference "
                        "(default 6000)")
    p.add_argument("--n-steps", type=positive_int, default=3000,
                   help="gradient steps of scratch, pooled and plenty training (default 3000)")
    p.add_argument("--finetune-steps", type=positive_int, default=1000,
                   help="gradient steps of the warm start's fine-tuning (default 1000)")
    p.add_argument("--truth-episodes", type=positive_int, default=20_000,
                   help="simulator rollouts per true value (default 20000)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="one full repetition (data, training, truth) per seed (default 0 1 2)")
    p.add_argument("--json", metavar="OUT", help="also write the results as JSON")
    p.set_defaults(handler=cmd_transfer)

    p = sub.add_parser("domains", help="print the decision domains (features, actions, reward) "
                       "as markdown")
    p.add_argument("--output", help="write to this file instead of stdout")
    p.set_defaults(handler=cmd_domains)

    p = sub.add_parser("schemas", help="print the landing-zone schemas as markdown")
    p.add_argument("--output", help="write to this file instead of stdout")
    p.set_defaults(handler=cmd_schemas)

    p = sub.add_parser("quarantine", help="list quarantined rows and rejected landing files "
                       "with their reasons",
                       description="Lists the warehouse's quarantine table: file, 1-based row "
                                   "number in the file (file: rejected whole), reason and the "
                                   "raw record (cut), then the count per file and reason.")
    p.add_argument("--dataset", help="only this landing dataset (e.g. clickstream)")
    p.add_argument("--day", type=iso_date, help="only this partition, YYYY-MM-DD")
    p.add_argument("--limit", type=positive_int, default=50,
                   help="most rows listed (default 50); the summary counts all")
    p.add_argument("--json", metavar="OUT", help="also write the rows listed (records whole) "
                   "and the summary as JSON")
    p.set_defaults(handler=cmd_quarantine)

    p = sub.add_parser("bench", help="benchmark each stage against this machine's floor",
                       description="Times ingestion, transitions, training and OPE side by side "
                                   "with their reference (bare DuckDB, polars sort, direct "
                                   "d3rlpy fit, the 10M/s goal) and prints a table.")
    from offline_rl.bench_config import BenchConfig
    from offline_rl.configuration import add_flag

    add_flag(p, BenchConfig, "sizes", type=positive_int, nargs="+")
    for name in ("train_steps", "ope_transitions", "fqe_steps"):
        add_flag(p, BenchConfig, name, type=positive_int)
    add_flag(p, BenchConfig, "device")
    p.add_argument("--end-to-end", action="store_true",
                   help="also run the nightly stages of every domain for one simulated day")
    add_flag(p, BenchConfig, "end_to_end_events", type=positive_int)
    add_flag(p, BenchConfig, "end_to_end_steps", type=nonnegative_int)
    add_flag(p, BenchConfig, "end_to_end_workers", type=nonnegative_int)
    p.add_argument("--json", metavar="OUT", help="also write the figures as JSON")
    p.set_defaults(handler=cmd_bench)

    from offline_rl.export.command import add_commands
    from offline_rl.ope.command import add_ope_parser, add_validate_ope_parser

    add_commands(sub)
    add_ope_parser(sub)
    add_validate_ope_parser(sub)
    if more_commands is not None:
        more_commands(sub)
    return parser


def registered_domain(name: str) -> Domain:
    """The registered domain ``name``; a usage error naming the choices otherwise."""
    from offline_rl.domains import get_domain

    try:
        return get_domain(name)
    except ValueError as exc:
        raise UsageError(str(exc), "offline-rl domains describes each") from None


class CommandParser(argparse.ArgumentParser):
    """A sub-command's parser: accepts ``--debug`` and ``--verbose`` after the command too
    (e.g. ``demo --debug``). Its copies default to SUPPRESS, so they never overwrite the
    top-level value; the sub-commands' own sub-commands are parsers of this class as well
    (``add_subparsers`` makes them of its parser's class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                          help="show the full error and traceback")
        self.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                          help="log progress at INFO")


def root_cause(exc: BaseException) -> BaseException:
    """The innermost explicit cause (Dagster wraps a step's exception in its own)."""
    seen = {id(exc)}
    while exc.__cause__ is not None and id(exc.__cause__) not in seen:
        exc = exc.__cause__
        seen.add(id(exc))
    return exc


def one_line(exc: BaseException, *, with_type: bool) -> tuple[str, bool]:
    """The first line of the message (and whether lines were dropped)."""
    infos = getattr(exc, "user_code_process_error_infos", None)
    if infos:  # Dagster gave up retrying a step: report the step's own innermost error
        info = infos[-1]
        while getattr(info, "cause", None) is not None:
            info = info.cause
        lines = [line for line in str(info.message or "").splitlines() if line.strip()]
        return (lines[0].strip() if lines else str(info.cls_name)), True
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    text = lines[0].strip() if lines else ""
    if with_type or not text:
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text, len(lines) > 1


def run(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parses ``argv``, runs the command, and turns errors into one line plus a hint.

    Exit codes: 0 success, 1 failure, 2 usage error (bad arguments or input), 130 interrupted.
    ``--debug`` re-raises instead, with the traceback.
    """
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_libraries()
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("error: interrupted", file=sys.stderr)
        return 130
    except UsageError as exc:
        if args.debug:
            raise
        print(f"error: {one_line(exc, with_type=False)[0]}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 2
    except Exception as exc:
        if args.debug:
            raise
        cause = root_cause(exc)
        expected = isinstance(cause, (ValueError, OSError, RuntimeError)) \
            and type(cause).__module__ == "builtins"
        message, more = one_line(cause, with_type=not expected)
        print(f"error: {message}", file=sys.stderr)
        print("hint: run with --debug for the " + ("full message and " if more else "")
              + "traceback", file=sys.stderr)
        return 1


def quiet_libraries() -> None:
    """d3rlpy logs every epoch through structlog; keep only warnings unless --verbose.

    d3rlpy also imports the retired ``gym`` package, whose import prints a deprecation
    notice users cannot act on (this project uses gymnasium); it is swallowed here.
    """
    import contextlib
    import io

    import structlog

    with contextlib.redirect_stderr(io.StringIO()):
        import gym  # noqa: F401

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
