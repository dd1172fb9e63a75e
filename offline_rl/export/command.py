"""The export commands: ``exports list|show|rollback|prune`` and ``predict``.

Wired into ``offline_rl.cli`` with ``add_commands(sub)``. Handlers import ``offline_rl.cli``
(and torch, through the loader) lazily, so this module can be imported from there without a
cycle and ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from offline_rl.argtypes import positive_int
from offline_rl.paths import Location

FEATURE_PREFIX = "f_"
LATEST_NAME = "latest"  # offline_rl.export.loader.LATEST, without importing torch here
MANIFEST_NAME = "manifest.json"  # offline_rl.export.loader.MANIFEST
ROWS = "1-based, header excluded"
"""How row numbers are counted in ``predict``'s output and messages (as in the quarantine)."""
SHOWN_NAMES = 8
"""At most this many column names are listed in one message (then "and N more")."""


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN_NAMES])
    return shown + (f" and {len(names) - SHOWN_NAMES} more" if len(names) > SHOWN_NAMES else "")


def check_domain(domain: str, export_root: Location) -> None:
    """Raises ``UsageError`` for a domain that is neither registered nor has an export folder
    under ``export_root``, listing the choices (registered domains and exported ones)."""
    from offline_rl.cli import UsageError
    from offline_rl.domains import domain_names

    if not domain or "/" in domain or "\\" in domain or domain.startswith("."):
        raise UsageError(f"invalid domain {domain!r}", "e.g. --domain recommendation")
    if domain in domain_names() or (export_root / domain).is_dir():
        return
    exported = sorted(p.name for p in export_root.iterdir()
                      if p.is_dir() and not p.name.startswith(".")) if export_root.is_dir() else []
    choices = list(domain_names()) + [d for d in exported if d not in domain_names()]
    raise UsageError(f"unknown domain {domain!r}; choose one of: {', '.join(choices)}",
                     "offline-rl exports list shows the domains with exports")


# ------------------------------------------------------------------ predict

def add_predict_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``predict --domain D --features FILE [--version V] [--json OUT]``."""
    p = subparsers.add_parser(
        "predict", help="actions and action values of an exported policy for feature rows",
        description="Loads an export (checksums verified) and prints, for each data row of "
                    f"FILE ({ROWS}), the policy's action and the value of every action, "
                    "tab-separated. FILE is Parquet or CSV with one column per feature of the "
                    "export's schema, named NAME or f_NAME; other columns are ignored. "
                    "Missing columns, nulls and non-finite values are refused with the column "
                    "and row (exit 2).")
    p.add_argument("--domain", default="recommendation",
                   help="decision domain (default recommendation)")
    p.add_argument("--features", required=True, metavar="FILE",
                   help="Parquet (.parquet/.pq) or CSV (.csv) file of feature rows")
    p.add_argument("--version", default="latest", help="export version (default latest)")
    p.add_argument("--json", metavar="OUT", help="write the predictions as JSON to OUT")
    p.add_argument("--strict", action="store_true",
                   help="refuse rows with a feature outside the range of the policy's training "
                        "data or a broken one-hot group (default: predict and warn)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the serving head's draws: with a serving head, each row also "
                        "gets the served action and its propensity (default 0)")
    p.set_defaults(handler=cmd_predict)
    return p


def read_feature_rows(path: Path, feature_names: list[str]) -> np.ndarray:
    """``float32 [n, len(feature_names)]`` from a Parquet or CSV file, columns in schema order.

    A feature may be a column ``name`` or ``f_name`` (not both); other columns are ignored.
    A file without data rows (a header-only CSV, an empty Parquet file) gives ``[0, n]``.
    Raises ``ValueError`` naming the file and only the missing, doubly named or non-numeric
    columns (with how many the schema has), or the columns holding nulls or non-finite numbers
    with the first such row (1-based data row, header excluded, as ``predict`` numbers its
    output and the quarantine its rows); ``FileNotFoundError`` when there is no such file,
    ``IsADirectoryError`` for a folder.
    """
    import polars as pl

    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"features file {path} is a directory; pass one .parquet, .pq "
                                "or .csv file")
    if not path.is_file():
        raise FileNotFoundError(f"features file {path} does not exist")
    suffix = path.suffix.lower()
    readers = {".parquet": pl.read_parquet, ".pq": pl.read_parquet,
               ".csv": lambda p: pl.read_csv(p, infer_schema_length=10_000)}
    if suffix not in readers:
        raise ValueError(f"{path}: unknown format {suffix!r}; use .parquet, .pq or .csv")
    try:
        frame = readers[suffix](path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"{path}: cannot read as {suffix[1:]}: {first_line}") from None
    columns, missing, ambiguous = [], [], []
    for name in feature_names:
        found = [c for c in (name, FEATURE_PREFIX + name) if c in frame.columns]
        if not found:
            missing.append(name)
        elif len(found) > 1:
            ambiguous.append(f"{found[0]}/{found[1]}")
        columns.append(found[0] if found else None)
    if missing:
        raise ValueError(f"{path} lacks {len(missing)} of the {len(feature_names)} feature "
                         f"columns: {_names(missing)} (name them NAME or {FEATURE_PREFIX}NAME)")
    if ambiguous:
        raise ValueError(f"{path} has both spellings of feature column(s): "
                         f"{', '.join(ambiguous)}; keep one of each")
    selected = frame.select(columns)
    if selected.height == 0:  # a header-only CSV has no types to check (polars reads String)
        return np.zeros((0, len(columns)), dtype=np.float32)
    non_numeric = [f"{c} ({t})" for c, t in selected.schema.items()
                   if not (t.is_numeric() or t == pl.Boolean)]
    if non_numeric:
        raise ValueError(f"{path}: {len(non_numeric)} of the {len(feature_names)} feature "
                         f"columns are not numeric: {_names(non_numeric)}")
    x = selected.cast(pl.Float64).to_numpy().reshape(selected.height, len(columns))
    with np.errstate(over="ignore"):  # nulls are NaN here; values beyond float32 become inf
        x = x.astype(np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        first = bad.argmax(axis=0)
        where = [f"{c} (first at row {int(first[j]) + 1})"
                 for j, c in enumerate(columns) if bad[:, j].any()]
        raise ValueError(f"{path}: null or non-finite values in feature column(s) "
                         f"{_names(where)}; rows are {ROWS}")
    return x


def cmd_predict(args: argparse.Namespace) -> int:
    from offline_rl.cli import UsageError, paths_from
    from offline_rl.export.loader import ExportError, load_latest

    check_domain(args.domain, paths_from(args).exports)
    try:
        policy = load_latest(paths_from(args).exports, args.domain, args.version)
    except ExportError as exc:
        raise UsageError(str(exc), "list versions with: offline-rl exports list") from None
    if not policy.has_values:
        raise UsageError(f"{policy.path} is a format-1 export without action values",
                         "predict needs an export made by this version (re-run the export)")
    try:
        x = read_feature_rows(Path(args.features), policy.feature_names)
    except (ValueError, OSError) as exc:
        raise UsageError(str(exc), f"{args.domain} {policy.version} expects "
                                   f"{len(policy.feature_names)} feature columns; list them "
                                   f"with: offline-rl exports show --domain {args.domain} "
                                   f"--version {policy.version}") from None
    if x.shape[0] == 0:
        print(f"warning: {args.features} has no data rows; nothing to predict", file=sys.stderr)
    problems = policy.feature_problems(x, rows=f"row(s) of {args.features}", numbering=ROWS)
    for text in problems:
        if args.strict:
            raise UsageError(text, "check the features' units and encoding, or leave out "
                                   "--strict to predict anyway")
        print(f"warning: {text}", file=sys.stderr)
    actions, values = policy.predict_with_values(x)
    names = policy.action_names
    rows: list[dict[str, Any]]  # JSON records
    rows = [{"row": i, "action": int(a),
             "action_name": names[a] if 0 <= a < len(names) else None,
             "values": {names[j]: _num(v) for j, v in enumerate(row)}}
            for i, (a, row) in enumerate(zip(actions.tolist(), values.tolist(), strict=True),
                                         start=1)]
    served = None
    if policy.serving is not None:  # what the shop serves and logs for these rows
        served = policy.sample(x, np.random.default_rng(args.seed))
        for r, a, p in zip(rows, served.action.tolist(), served.propensity.tolist(),
                           strict=True):
            r.update(served_action=int(a), propensity=_num(p))
    record = {"domain": args.domain, "version": policy.version, "export": str(policy.path),
              "value_kind": policy.value_kind, "features": str(args.features),
              "n_rows": len(rows), "row_numbering": ROWS, "rows": rows,
              "exploration": policy.manifest.get("exploration"),
              "seed": args.seed if served is not None else None}
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=2))
        print(f"{args.domain} {policy.version}: {len(rows)} row(s) -> {args.json}")
        return 0
    explore = policy.manifest.get("exploration")
    print(f"# {args.domain} {policy.version} ({policy.manifest.get('algorithm', '?')}); "
          f"values: {policy.value_kind}; rows {ROWS}"
          + (f"; served with {explore['kind']} exploration (epsilon {explore['epsilon']:g}), "
             f"draws seeded {args.seed}" if served is not None and explore else ""))
    width = max([len(n) for n in names] + [8])
    serving_cols = ["served", "propensity"] if served is not None else []
    print("\t".join(["row", "action", "name".ljust(width), *serving_cols, *names]))
    for r in rows:
        extra = [str(r["served_action"]), f"{r['propensity']:.6g}"] if served is not None else []
        print("\t".join([str(r["row"]), str(r["action"]), str(r["action_name"]).ljust(width),
                         *extra, *(f"{v:.6g}" for v in r["values"].values())]))
    return 0


def _num(v: float) -> float | str:
    return v if math.isfinite(v) else str(v)  # JSON has no inf/nan


# ------------------------------------------------------------------ exports

EXPORTS_HINT = "the nightly job exports a policy when its gate promotes one"


def add_exports_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``exports list|show|rollback|prune``: the versions of each domain's exported policy."""
    parser = subparsers.add_parser(
        "exports", help="list, show, roll back or prune exported policies",
        description="Each promoted policy is exported as a version <home>/exports/DOMAIN/vNNNN "
                    "(or under --exports / $OFFLINE_RL_EXPORTS, a folder or fsspec URI); "
                    "the file DOMAIN/latest names the version in production.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def domain_option(p: argparse.ArgumentParser, default: str | None) -> None:
        p.add_argument("--domain", default=default,
                       help="decision domain" + (f" (default {default})" if default
                                                 else " (default: every domain with exports)"))

    p = actions.add_parser("list", help="versions of each domain; * marks latest",
                           description="Lists every version, oldest first, with its status "
                                       "(ok, CORRUPT: a file fails its SHA-256 checksum, or "
                                       "INCOMPLETE: a file or the manifest is missing), "
                                       "algorithm, decision date, candidate and the estimate "
                                       "the gate decided on; * marks the version latest names. "
                                       "Every file of every version is read to check it.")
    domain_option(p, None)
    p.set_defaults(handler=cmd_list)

    p = actions.add_parser("show", help="print a version's manifest as JSON",
                           description="Checks the version's files against the manifest's "
                                       "SHA-256 digests, then prints the manifest as JSON.")
    domain_option(p, "recommendation")
    p.add_argument("--version", default=LATEST_NAME,
                   help="version, e.g. v0003 (default: the one latest names)")
    p.add_argument("--no-verify", action="store_true",
                   help="print the manifest even if a file is missing or fails its checksum")
    p.set_defaults(handler=cmd_show)

    p = actions.add_parser("rollback", help="point latest at an earlier version",
                           description="Points latest at --version, or at the version before "
                                       "the current one, after checking every file of that "
                                       "version against its SHA-256 checksum (a corrupt or "
                                       "incomplete version is refused and latest is left as "
                                       "it was). The switch is atomic; no files are deleted. "
                                       "With MLflow tracking on, the registered model's "
                                       "champion alias moves to that version too (a failure "
                                       "there is a warning; latest has moved).")
    domain_option(p, "recommendation")
    p.add_argument("--version", help="version to serve (default: the one before latest)")
    p.add_argument("--mlflow-uri", default=None, metavar="URI",
                   help="MLflow tracking URI whose champion alias follows (default: "
                        "$OFFLINE_RL_MLFLOW_URI; unset: none)")
    p.set_defaults(handler=cmd_rollback)

    p = actions.add_parser("prune", help="delete old versions, keeping the newest N",
                           description="Deletes every version but the newest N; the version "
                                       "latest names is always kept.")
    domain_option(p, "recommendation")
    p.add_argument("--keep", type=positive_int, metavar="N",
                   help="number of newest versions to keep (required; at least 1)")
    p.set_defaults(handler=cmd_prune)
    return parser


def _export_root(args: argparse.Namespace) -> Location:
    """``--exports``, ``$OFFLINE_RL_EXPORTS`` or ``<home>/exports``: a folder or fsspec URI."""
    from offline_rl.cli import paths_from

    return paths_from(args).exports


def _domain_root(args: argparse.Namespace) -> Location:
    root = _export_root(args)
    check_domain(args.domain, root)
    return root / args.domain


def _summary(manifest: dict[str, Any]) -> str:
    """One line: algorithm, decision date, candidate, the estimate the gate decided on (dr
    in manifests from before the per-domain headline), creation time."""
    name = (manifest.get("decision") or {}).get("headline_estimator") or "dr"
    head = (manifest.get("estimates") or {}).get(name) or {}
    estimate = (f"{name} {head['value']:.3f} [{head['low']:.3f}, {head['high']:.3f}]"
                if {"value", "low", "high"} <= head.keys() else f"{name} -")
    created = str(manifest.get("created_at") or "-")[:19]
    return (f"{manifest.get('algorithm', '?'):<12} "
            f"{(manifest.get('decision') or {}).get('partition_date', '?'):<10}  "
            f"{manifest.get('candidate', '?'):<12} {estimate:<28} {created}")


def cmd_list(args: argparse.Namespace) -> int:
    from offline_rl.export.registry import current_version, list_versions, version_problems

    root = _export_root(args)
    if args.domain:
        domains = [_domain_root(args).name]
    else:
        domains = sorted(p.name for p in root.iterdir()
                         if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
    if not domains:
        print(f"no exports under {root} yet; {EXPORTS_HINT}")
        return 0
    for i, domain in enumerate(domains):
        versions = list_versions(root / domain)
        current = current_version(root / domain)
        state = "no latest" if current is None else f"latest {current}"
        if current is not None and current not in versions:
            state += " (MISSING: roll back with offline-rl exports rollback --version V)"
        damaged = {v: problems for v in versions
                   if (problems := version_problems(root / domain, v))}
        if damaged:
            state += f"; {len(damaged)} damaged: roll back only to a version marked ok"
        print(("\n" if i else "") + f"{domain}: {len(versions)} version(s), {state}")
        for v in sorted([*versions, *_unfinished(root / domain, versions)], key=_number):
            mark = "*" if v == current else " "
            if v not in versions:
                print(f"{mark} {v}  {'INCOMPLETE':<10}  no {MANIFEST_NAME} (an unfinished "
                      "publish; not servable)")
                continue
            status = _status(damaged.get(v, []))
            try:
                manifest = json.loads((root / domain / v / MANIFEST_NAME).read_text())
                summary = _summary(manifest)
            except (OSError, ValueError, TypeError, AttributeError, KeyError) as exc:
                summary = f"unreadable manifest: {exc}"
            detail = f"  ({'; '.join(damaged[v])})" if v in damaged else ""
            print(f"{mark} {v}  {status:<10}  {summary}{detail}")
    return 0


def _number(version: str) -> int:
    return int(version[1:])


def _status(problems: list[str]) -> str:
    """``ok``, ``INCOMPLETE`` (a file or the manifest missing) or ``CORRUPT`` (anything else:
    a file failing its checksum, an unreadable manifest)."""
    if not problems:
        return "ok"
    return "INCOMPLETE" if all(p.endswith("missing") for p in problems) else "CORRUPT"


def _unfinished(domain_root: Location, versions: list[str]) -> list[str]:
    """Folders named like a version that have no manifest (an unfinished publish)."""
    if not domain_root.is_dir():
        return []
    return [p.name for p in domain_root.iterdir()
            if p.name not in versions and p.name[:1] == "v" and p.name[1:].isdigit()
            and len(p.name) >= 5 and p.is_dir() and not (p / MANIFEST_NAME).is_file()]


def cmd_show(args: argparse.Namespace) -> int:
    from offline_rl.cli import UsageError
    from offline_rl.export.loader import ExportError, resolve_version, verify_files

    try:
        path = resolve_version(_domain_root(args), args.version)
    except ExportError as exc:
        raise UsageError(str(exc), "list versions with: offline-rl exports list") from None
    try:
        manifest = json.loads((path / MANIFEST_NAME).read_text())
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path / MANIFEST_NAME} is not valid JSON: {exc}",
                         "this version is damaged; roll back with: offline-rl exports "
                         "rollback") from None
    if not args.no_verify:
        try:
            verify_files(path, manifest)
        except ExportError as exc:
            raise UsageError(str(exc), "--no-verify prints the manifest anyway; roll back "
                                       "with: offline-rl exports rollback") from None
    print(json.dumps(manifest, indent=2))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from offline_rl.cli import UsageError
    from offline_rl.export.loader import ExportError
    from offline_rl.export.registry import current_version, rollback

    domain_root = _domain_root(args)
    before = current_version(domain_root)
    try:
        version = rollback(domain_root.parent, domain_root.name, args.version)
    except ExportError as exc:
        raise UsageError(str(exc), "offline-rl exports list shows each version's status; "
                                   "roll back to one marked ok") from None
    print(f"{domain_root.name}: latest {before or '(none)'} -> {version}")
    from offline_rl.tracking import Tracker

    tracker = Tracker.resolve(args.mlflow_uri)
    if tracker is not None:
        outcome = tracker.sync_champion(domain_root.parent, domain_root.name)
        if outcome.ok:
            print(f"{domain_root.name}: {outcome.message}")
        else:
            print(f"warning: {outcome.message}", file=sys.stderr)
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from offline_rl.cli import UsageError
    from offline_rl.export.registry import current_version, list_versions, prune

    if args.keep is None:
        raise UsageError("exports prune needs --keep N", "e.g. offline-rl exports prune --keep 5")
    domain_root = _domain_root(args)
    removed = prune(domain_root.parent, domain_root.name, args.keep)
    kept = list_versions(domain_root)
    print(f"{domain_root.name}: removed {len(removed)} version(s)"
          + (f" ({', '.join(removed)})" if removed else "")
          + f"; kept {', '.join(kept) or 'none'} (latest {current_version(domain_root)})")
    return 0


def add_commands(subparsers: Any) -> None:
    """``exports`` and ``predict``."""
    add_exports_parser(subparsers)
    add_predict_parser(subparsers)
