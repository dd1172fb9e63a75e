"""Command-line parts for exports: ``predict`` and ``exports prune``.

Wired into ``offline_rl.cli`` with ``add_commands(sub)`` (or the two functions separately)
after its ``exports`` sub-command exists. Handlers import ``offline_rl.cli`` lazily, so this
module can be imported from there without a cycle.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from offline_rl.argtypes import positive_int

FEATURE_PREFIX = "f_"


# ------------------------------------------------------------------ predict

def add_predict_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``predict --domain D --features FILE [--version V] [--json OUT]``."""
    p = subparsers.add_parser(
        "predict", help="actions and action values of an exported policy for feature rows",
        description="Loads an export (checksums verified) and prints, for each row of FILE, "
                    "the policy's action and the value of every action. FILE is Parquet or "
                    "CSV with one column per feature of the export's schema (named NAME or "
                    "f_NAME).")
    p.add_argument("--domain", default="recommendation", help="decision domain")
    p.add_argument("--features", required=True, metavar="FILE",
                   help="Parquet (.parquet/.pq) or CSV (.csv) file of feature rows")
    p.add_argument("--version", default="latest", help="export version (default latest)")
    p.add_argument("--json", metavar="OUT", help="write the predictions as JSON to OUT")
    p.set_defaults(handler=cmd_predict)
    return p


def read_feature_rows(path: Path, feature_names: list[str]) -> np.ndarray:
    """``float32 [n, len(feature_names)]`` from a Parquet or CSV file, columns in schema order.

    A feature may be a column ``name`` or ``f_name``. Raises ``ValueError`` naming the missing,
    non-numeric or null columns.
    """
    import polars as pl

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"features file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        frame = pl.read_parquet(path)
    elif suffix == ".csv":
        frame = pl.read_csv(path, infer_schema_length=10_000)
    else:
        raise ValueError(f"{path}: unknown format {suffix!r}; use .parquet or .csv")
    columns, missing = [], []
    for name in feature_names:
        found = next((c for c in (name, FEATURE_PREFIX + name) if c in frame.columns), None)
        if found is None:
            missing.append(name)
        columns.append(found)
    if missing:
        raise ValueError(f"{path} lacks feature column(s): {', '.join(missing)} "
                         f"(name them NAME or {FEATURE_PREFIX}NAME)")
    selected = frame.select(columns)
    non_numeric = [c for c, t in selected.schema.items() if not (t.is_numeric() or t == pl.Boolean)]
    if non_numeric:
        raise ValueError(f"{path}: non-numeric feature column(s): {', '.join(non_numeric)}")
    nulls = [c for c in columns if selected[c].null_count()]
    if nulls:
        raise ValueError(f"{path}: null values in feature column(s): {', '.join(nulls)}")
    return selected.cast(pl.Float32).to_numpy().astype(np.float32, copy=False).reshape(
        selected.height, len(columns))


def cmd_predict(args: argparse.Namespace) -> int:
    from offline_rl.cli import UsageError, paths_from
    from offline_rl.export.loader import ExportError, load_latest

    try:
        policy = load_latest(paths_from(args).exports, args.domain, args.version)
    except ExportError as exc:
        raise UsageError(str(exc), "list versions with: offline-rl exports list") from None
    if not policy.has_values:
        raise UsageError(f"{policy.path} is a format-1 export without action values",
                         "predict needs an export made by this version (re-run the export)")
    try:
        x = read_feature_rows(Path(args.features), policy.feature_names)
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(str(exc), f"expected columns: {', '.join(policy.feature_names)}") \
            from None
    actions, values = policy.predict_with_values(x)
    names = policy.action_names
    rows = [{"row": i, "action": int(a), "action_name": names[a] if 0 <= a < len(names) else None,
             "values": {names[j]: _num(v) for j, v in enumerate(row)}}
            for i, (a, row) in enumerate(zip(actions.tolist(), values.tolist(), strict=True))]
    record = {"domain": args.domain, "version": policy.version, "export": str(policy.path),
              "value_kind": policy.value_kind, "features": str(args.features),
              "n_rows": len(rows), "rows": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=2))
        print(f"{args.domain} {policy.version}: {len(rows)} row(s) -> {args.json}")
        return 0
    print(f"# {args.domain} {policy.version} ({policy.manifest.get('algorithm', '?')}); "
          f"values: {policy.value_kind}")
    width = max([len(n) for n in names] + [8])
    print("\t".join(["row", "action", "name".ljust(width), *names]))
    for r in rows:
        print("\t".join([str(r["row"]), str(r["action"]), str(r["action_name"]).ljust(width),
                         *(f"{v:.6g}" for v in r["values"].values())]))
    return 0


def _num(v: float) -> float | str:
    return v if math.isfinite(v) else str(v)  # JSON has no inf/nan


# ------------------------------------------------------------------ exports prune

def add_exports_retention(subparsers: Any) -> argparse.ArgumentParser:
    """Adds ``prune`` (with ``--keep N``) to the ``exports`` sub-command, creating it if absent.

    Other ``exports`` actions still go to the handler the parser had.
    """
    parser = subparsers.choices.get("exports")
    if parser is None:
        parser = subparsers.add_parser("exports", help="prune exported policies")
        parser.add_argument("action", choices=["prune"])
        parser.add_argument("--domain", default="recommendation", help="decision domain")
        previous = None
    else:
        action = next(a for a in parser._actions if a.dest == "action")
        if "prune" not in action.choices:
            action.choices = [*action.choices, "prune"]
        previous = parser.get_default("handler")
    parser.add_argument("--keep", type=positive_int, metavar="N",
                        help="prune: keep the newest N versions (and always the latest one)")

    def handler(args: argparse.Namespace) -> int:
        if args.action == "prune" or previous is None:
            return cmd_prune(args)
        return previous(args)

    parser.set_defaults(handler=handler)
    return parser


def cmd_prune(args: argparse.Namespace) -> int:
    from offline_rl.cli import UsageError, paths_from
    from offline_rl.export.registry import current_version, list_versions, prune

    if args.keep is None:
        raise UsageError("exports prune needs --keep N", "e.g. offline-rl exports prune --keep 5")
    root = paths_from(args).exports
    removed = prune(root, args.domain, args.keep)
    kept = list_versions(root / args.domain)
    print(f"{args.domain}: removed {len(removed)} version(s)"
          + (f" ({', '.join(removed)})" if removed else "")
          + f"; kept {', '.join(kept) or 'none'} (latest {current_version(root / args.domain)})")
    return 0


def add_commands(subparsers: Any) -> None:
    """Both of the above."""
    add_predict_parser(subparsers)
    add_exports_retention(subparsers)
