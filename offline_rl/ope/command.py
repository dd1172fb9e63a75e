"""``offline-rl ope`` and ``offline-rl validate-ope`` from the command line.

``add_ope_parser(subparsers)`` adds ``ope``: it calls
:func:`offline_rl.ope.public.evaluate_logs` with the nightly evaluation's settings
(``OPEConfig``; the fields of ``OPE_SETTINGS`` as options, their defaults read from it) and the
action count of ``--domain`` or the target export's manifest, prints a table of estimates
(raw and relative to the behaviour policy's on-policy value) and the diagnostics, prints every
warning as a ``warning:`` line on stderr, and writes the JSON with ``--json``. Malformed input
becomes ``offline_rl.cli.UsageError`` (one ``error:`` line plus a ``hint:``, exit code 2).
Every row number it prints is a 1-based data row of the file, header excluded (as in the
quarantine).

Before estimating, the command checks the logs for what the estimators would silently
absorb (the rules, with their constants below):

* refused: an action outside the domain's actions ``0..n-1`` (``n`` from ``--domain`` or the
  target export's manifest), and rewards so large that their squares overflow float64
  (``sum(reward**2)`` is inf, roughly ``|reward| > 1e150``): variances, intervals and FQE's
  loss would be inf or NaN;
* warned: behaviour probabilities below ``TINY_PROPENSITY`` (importance weights above its
  inverse; the effective sample size collapses), and rewards whose magnitude exceeds
  ``REWARD_OUTLIER_FACTOR`` times the median nonzero ``|reward|`` of the logs.

``add_validate_ope_parser(subparsers)`` adds ``validate-ope``: it runs
:func:`offline_rl.experiments.validation.run.run_validation` (progress on stderr), prints the
per-domain tables, the headline estimator and the gate per validation scenario, and the
overall figures, and writes the JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

from offline_rl.argtypes import (
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
    share,
)
from offline_rl.configuration import add_flag, default, flag_help

ROWS = "1-based, header excluded"
"""How row numbers are counted in every message of ``ope`` (as in the quarantine)."""
TINY_PROPENSITY = 1e-4
"""Behaviour probabilities below this (importance weights above 10,000) are warned about."""
REWARD_OUTLIER_FACTOR = 1e6
"""A reward with ``|r|`` above this many times the median nonzero ``|r|`` is warned about."""


def _unit_interval(low_open: bool, high_open: bool) -> Any:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        too_low = value <= 0 if low_open else value < 0
        too_high = value >= 1 if high_open else value > 1
        if not math.isfinite(value) or too_low or too_high:
            interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
            raise argparse.ArgumentTypeError(f"must be in {interval}: {text}")
        return value

    return parse


def add_ope_parser(subparsers: Any) -> None:
    """Adds ``ope`` to an ``argparse`` subparsers action (``parser.add_subparsers()``)."""
    p = subparsers.add_parser(
        "ope", help="off-policy evaluation of any policy on logged decisions",
        description="Estimate a target policy's value from logged decisions with IS, DM and "
                    "DR estimators, bootstrap intervals and diagnostics.")
    p.add_argument("--logs", required=True,
                   help="logged decisions (.parquet or .csv): episode_id, step, action, reward, "
                        "[behavior_prob], [terminal], [f_<feature> ...]")
    p.add_argument("--target", required=True,
                   help="export directory (with manifest.json), a domain's latest pointer "
                        "(exports/DOMAIN/latest: the version it names), or a table (.parquet "
                        "or .csv) episode_id, step, action, prob")
    p.add_argument("--domain", default=None,
                   help="decision domain of the logs: every logged action must be one of its "
                        "actions (default: the actions of the target export's manifest; "
                        "unchecked for a table target without --domain)")
    p.add_argument("--json", metavar="OUT", help="also write the result as JSON")
    p.add_argument("--served", action="store_true",
                   help="value an export as the shop serves it (its serving head: greedy plus "
                        "the manifest's exploration, a stochastic target) instead of its greedy "
                        "policy: what a promotion promises")
    settings = p.add_argument_group(
        "evaluation settings", "the nightly evaluation's (offline_rl.ope.evaluate.OPEConfig), "
                               "with its defaults: the same settings give the same numbers")
    for name, value, kind, text in ope_settings():
        settings.add_argument("--" + name.replace("_", "-"), type=kind, default=value,
                              help=text)
    p.set_defaults(handler=cmd_ope)


OPE_SETTINGS: tuple[tuple[str, Any], ...] = (
    ("alpha", _unit_interval(True, True)),
    ("n_bootstrap", nonnegative_int),
    ("fqe_steps", positive_int),
    ("fqe_refits", nonnegative_int),
    ("fqe_folds", positive_int),
    ("seed", int),
    ("gamma", _unit_interval(False, False)),
)
"""``OPEConfig`` fields ``ope`` takes as ``--name-with-dashes``: (field, parser)."""


def ope_settings() -> list[tuple[str, Any, Any, str]]:
    """``(field, default, parser, help)`` of each ``OPE_SETTINGS`` field, the default and the
    help read from ``OPEConfig`` (declared there only)."""
    from offline_rl.ope.evaluate import OPEConfig

    return [(name, default(OPEConfig, name), kind, flag_help(OPEConfig, name))
            for name, kind in OPE_SETTINGS]


LARGE = 1e9
"""From this magnitude on, numbers are printed in scientific notation (7 significant digits)."""


def _number(value: float | None, sign: str = "") -> str:
    """A number as printed in the table: 4 decimals, scientific from ``LARGE`` on."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:{sign}.6e}" if abs(value) >= LARGE else f"{value:{sign}.4f}"


def _fmt(value: float | None, width: int = 10) -> str:
    return f"{_number(value):>{width}}"


def _relative(value: float | None, base: float) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    diff = value - base
    if base == 0:
        return _number(diff, "+")
    return f"{_number(diff, '+')} ({100 * diff / abs(base):+.1f}%)"


def _columns(rows: list[list[str]]) -> list[str]:
    """Rows of cells as lines: the first column left-aligned, the others right-aligned, each
    column as wide as its widest cell and columns two spaces apart, so that they stay
    separated at any magnitude (the last cell of a row is left as is)."""
    n = max(len(r) for r in rows)
    widths = [max(len(r[j]) for r in rows if len(r) > j) for j in range(n - 1)]
    lines = []
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [c.rjust(widths[j]) for j, c in enumerate(r[1:-1], 1)]
        lines.append("  ".join([*cells, r[-1]] if len(r) > 1 else cells).rstrip())
    return lines


def format_result(record: dict[str, Any], logs: str, target: str) -> str:
    """The human-readable report of an :meth:`OPEResult.as_json` record."""
    base = record["behavior_value"]
    level = 100 * (1 - record["alpha"])
    refits = (record.get("details") or {}).get("fqe", {}).get("refits")
    model = f", FQE refitted on {refits} of them for dm/dr/sndr" if refits else ""
    lines = [
        f"off-policy evaluation of {target}",
        f"  on {logs}: {record['n_episodes']:,} episodes, {record['n_decisions']:,} decisions; "
        f"gamma {record['gamma']:g}; {level:g}% bootstrap intervals "
        f"({record['n_bootstrap']} resamples of the episodes{model}); behaviour "
        f"probabilities {record['behavior_prob_source']}",
        "",
    ]
    table = [["estimator", "value", "low", "high", " vs behaviour"],
             ["behaviour", _number(base), _number(record["behavior_interval"]["low"]),
              _number(record["behavior_interval"]["high"]), " (on-policy, observed returns)"]]
    for name, est in record["estimates"].items():
        table.append([name, _number(est["value"]), _number(est["low"]), _number(est["high"]),
                      " " + (_relative(est["value"], base) if base is not None else "n/a")])
    lines += _columns([[r[0].ljust(10), *r[1:]] for r in table])
    lines += ["", "diagnostics:"]
    lines += _columns([["  " + key.ljust(26), _number(value).rjust(10), ""]
                       for key, value in record["diagnostics"].items()])
    return "\n".join(lines)


_ROW_NUMBER = re.compile(r"\brow (\d+)( \()?")


def one_based_rows(message: str) -> str:
    """``evaluate_logs`` numbers rows from 0 (0-based data rows, header excluded); the command
    reports them from 1, like the quarantine: every ``row N`` becomes ``row N+1``, the first
    one marked ``(1-based, header excluded)``."""
    marked = False

    def shift(match: re.Match[str]) -> str:
        nonlocal marked
        number = int(match.group(1)) + 1
        if marked:
            return f"row {number}{match.group(2) or ''}"
        marked = True
        return f"row {number} ({ROWS}" + ("; " if match.group(2) else ")")

    return _ROW_NUMBER.sub(shift, message)


# ------------------------------------------------------------------ checks of the logs

def resolve_target(target: str) -> str:
    """The target as ``evaluate_logs`` takes it: a domain's ``latest`` pointer becomes the
    export directory it names; anything else is passed on as given."""
    from pathlib import PurePath

    if PurePath(target).name != "latest" or not Path(target).is_file():
        return target
    from offline_rl.cli import UsageError
    from offline_rl.export.loader import ExportError
    from offline_rl.export.registry import resolve_export

    try:
        return str(resolve_export(target))
    except ExportError as exc:
        raise UsageError(f"target {target}: {exc}", "list versions with: offline-rl exports "
                                                    "list") from None


def action_count(target: str, domain: str | None) -> tuple[int, str] | None:
    """How many actions the logs may use and where that comes from: ``--domain``, else the
    target export's manifest (``n_actions`` or its ``action_map``); None when neither says."""
    from offline_rl.cli import UsageError, registered_domain

    manifest: dict[str, Any] = {}
    path = Path(target)
    manifest_path = path / "manifest.json" if path.is_dir() else path
    if manifest_path.name == "manifest.json" and manifest_path.is_file():
        try:
            loaded = json.loads(manifest_path.read_text())
            manifest = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            manifest = {}  # the loader reports a broken manifest
    if domain is not None:
        spec = registered_domain(domain)
        exported = manifest.get("domain")
        if exported not in (None, domain):
            raise UsageError(f"target {target} is a {exported} policy, not {domain}",
                             f"pass --domain {exported} or a {domain} export")
        return spec.n_actions, f"domain {domain}"
    try:
        n = int(manifest.get("n_actions") or len(manifest.get("action_map") or {}))
    except (TypeError, ValueError):
        return None
    return (n, f"the export's manifest ({target})") if n > 0 else None


def _read_logged(path: str) -> Any:
    """The logs as ``evaluate_logs`` reads them, or None when they cannot be read (it then
    says why)."""
    import polars as pl

    suffix = Path(path).suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pl.read_parquet(path)
        if suffix == ".csv":
            return pl.read_csv(path, infer_schema_length=None)
    except (pl.exceptions.PolarsError, OSError):
        return None
    return None


def _numeric(frame: Any, column: str) -> Any:
    """A numeric column as float64 (nulls as NaN), or None when absent or not numeric."""
    import numpy as np

    if frame is None or column not in frame.columns:
        return None
    series = frame[column]
    if not series.dtype.is_numeric():
        return None
    return series.cast(float).fill_null(float("nan")).to_numpy().astype(np.float64)


def check_logs(frame: Any, name: str, actions: tuple[int, str] | None) -> dict[str, str]:
    """Refuses (``UsageError``) logged actions outside the domain's actions and rewards whose
    squares overflow float64; returns the warnings about outlying rewards (``"reward"``) and
    tiny behaviour probabilities (``"propensity"``; see the module docstring). Rows are
    reported 1-based."""
    import numpy as np

    from offline_rl.cli import UsageError

    warnings: dict[str, str] = {}
    action = _numeric(frame, "action")
    if action is not None and actions is not None:
        n, source = actions
        outside = np.flatnonzero(np.isfinite(action) & (action >= n))
        if outside.size:
            i = int(outside[0])
            raise UsageError(
                f"{name}: column 'action', row {i + 1} ({ROWS}): action {action[i]:g} is not "
                f"one of the {n} actions 0..{n - 1} of {source} ({outside.size} such row(s))",
                "the logs must use the policy's action encoding (see the manifest's "
                "action_map, or offline-rl domains)")
    reward = _numeric(frame, "reward")
    if reward is not None:
        finite = np.where(np.isfinite(reward), reward, 0.0)  # non-finite: refused by the reader
        size = np.abs(finite)
        with np.errstate(over="ignore"):
            overflow = not math.isfinite(float(np.sum(np.square(finite))))
        if overflow:
            i = int(np.argmax(size))
            raise UsageError(
                f"{name}: column 'reward', row {i + 1} ({ROWS}): reward {finite[i]:.6g} is too "
                "large: the sum of squared rewards overflows float64, so variances, intervals "
                "and the Q-model fit would be inf or NaN",
                "rescale the rewards (e.g. to currency units) to well below 1e150")
        nonzero = size[size > 0]
        if nonzero.size:
            median = float(np.median(nonzero))
            far = np.flatnonzero(size > REWARD_OUTLIER_FACTOR * median)
            if far.size:
                i = int(far[np.argmax(size[far])])
                warnings["reward"] = (
                    f"{far.size} reward(s) exceed {REWARD_OUTLIER_FACTOR:g} x the median "
                    f"nonzero |reward| ({median:.4g}); the largest, {finite[i]:.6g} at row "
                    f"{i + 1} ({ROWS}), dominates every estimate: check the reward's unit")
    prob = _numeric(frame, "behavior_prob")
    if prob is not None:
        tiny = np.flatnonzero((prob > 0) & (prob < TINY_PROPENSITY))
        if tiny.size:
            i = int(tiny[np.argmin(prob[tiny])])
            warnings["propensity"] = (
                f"{tiny.size} row(s) have a behaviour probability below {TINY_PROPENSITY:g}, "
                f"the smallest {prob[i]:.3g} at row {i + 1} ({ROWS}): their importance weights "
                f"exceed {1 / TINY_PROPENSITY:,.0f}, so few rows carry every weighted estimate")
    return warnings


def cmd_ope(args: argparse.Namespace) -> int:
    from offline_rl.cli import UsageError
    from offline_rl.ope.public import OPEInputError, evaluate_logs

    target = resolve_target(str(args.target))
    actions = action_count(target, args.domain)
    checks = check_logs(_read_logged(str(args.logs)), str(args.logs), actions)
    try:
        result = evaluate_logs(args.logs, target, n_actions=actions[0] if actions else None,
                               served=args.served,
                               **{name: getattr(args, name) for name, *_ in OPE_SETTINGS})
    except OPEInputError as exc:
        raise UsageError(one_based_rows(str(exc)),
                         exc.hint or "see `offline-rl ope --help` for the formats") from None
    record = result.as_json()
    if "propensity" in checks:
        checks["propensity"] += (f" (effective sample size {result.diagnostics.ess:.1f}, "
                                 f"{100 * result.diagnostics.ess_fraction:.2f}% of the "
                                 "episodes)")
    record["warnings"] = [*checks.values(), *record["warnings"]]
    print(format_result(record, str(args.logs), target))
    sys.stdout.flush()
    for warning in record["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=2, allow_nan=False) + "\n")
    return 0


# ------------------------------------------------------------------ validate-ope

def add_validate_ope_parser(subparsers: Any) -> None:
    """Adds ``validate-ope`` to an ``argparse`` subparsers action."""
    from offline_rl.experiments.validation.run import ValidationConfig
    from offline_rl.experiments.validation.scenarios import (
        DEFAULT_SCENARIOS,
        VALIDATION_FQE_STEPS,
        VALIDATION_SCENARIOS,
    )
    from offline_rl.ope.estimators import ESTIMATORS
    from offline_rl.ope.gate import (
        DEFAULT_MAX_WEIGHT_SHARE,
        MULTIPLICITY,
        PAIRED_BY,
        UNWEIGHTED,
        GateConfig,
    )

    defaults = ValidationConfig  # class-level field defaults: no OPEConfig (torch) import here
    p = subparsers.add_parser(
        "validate-ope", help="check off-policy estimates and gate decisions against simulator "
                             "truth",
        description="Over seeded simulator scenarios (behaviour-policy logs, candidates trained "
                    "as the nightly job trains them, a secretly worse, a rare-action, two near-"
                    "bar, a good-early-bad-late, an FQE-greedy, a SPIBB-style and a half-logging-"
                    "policy mixture candidate), runs train -> evaluate -> gate (the trained "
                    "candidates decided as the nightly job decides them, each constructed one in "
                    "a night that adds it) and compares with the simulator's true values: per "
                    "estimator the median relative error, rank correlation, share of candidate "
                    "pairs a margin apart put in the true order, and interval coverage; for the "
                    "gate the false promotion and missed improvement rates with exact upper "
                    "bounds, and a power curve; per domain and per scenario.",
        epilog="scenarios: " + "; ".join(f"{s.name} ({s.doc.rstrip('.')})"
                                         for s in VALIDATION_SCENARIOS.values()) + ".")
    p.add_argument("--domains", nargs="+", metavar="DOMAIN", default=None,
                   help="domains to validate (default: every registered domain)")
    p.add_argument("--scenarios", nargs="+", metavar="SCENARIO",
                   default=list(DEFAULT_SCENARIOS),
                   help=f"validation scenarios (default {' '.join(DEFAULT_SCENARIOS)}; "
                        f"choices: {', '.join(VALIDATION_SCENARIOS)})")
    p.add_argument("--seeds", type=positive_int, default=defaults.seeds,
                   help="runs per domain and scenario, seeds FIRST..FIRST+N-1 "
                        f"(default {defaults.seeds})")
    p.add_argument("--first-seed", type=nonnegative_int, default=defaults.first_seed,
                   help=f"first seed (default {defaults.first_seed}; a fresh range checks "
                        "settings tuned on another)")
    p.add_argument("--candidates", nargs="+", metavar="ALGORITHM",
                   default=list(defaults.candidates),
                   help=f"algorithms trained per run (default {' '.join(defaults.candidates)})")
    p.add_argument("--constructed", nargs="*", metavar="NAME",
                   default=list(defaults.constructed), choices=defaults.constructed,
                   help="constructed candidates per run (default, and choices: "
                        f"{' '.join(defaults.constructed)}; none: give the flag alone)")
    p.add_argument("--train-steps", type=positive_int, default=defaults.train_steps,
                   help=f"gradient steps per trained candidate (default {defaults.train_steps})")
    p.add_argument("--fqe-steps", type=positive_int, default=VALIDATION_FQE_STEPS,
                   help=f"FQE gradient steps per candidate (default {VALIDATION_FQE_STEPS})")
    p.add_argument("--fqe-folds", type=positive_int, default=1,
                   help="cross-fitting folds of FQE (OPEConfig.fqe_folds; default 1: off)")
    p.add_argument("--truth-episodes", type=positive_int, default=defaults.truth_episodes,
                   help=f"simulator rollouts per true value (default {defaults.truth_episodes})")
    p.add_argument("--indifference", type=nonnegative_float, default=defaults.indifference,
                   help="improvements count as missed beyond this share of the incumbent's "
                        f"true value above the bar (default {defaults.indifference:g})")
    p.add_argument("--episode-scale", type=positive_float, default=defaults.episode_scale,
                   help="multiplies the scenarios' episode counts (default "
                        f"{defaults.episode_scale:g}; e.g. 0.1 for a quick check)")
    p.add_argument("--json", metavar="OUT", help="also write every figure and run as JSON "
                                                 "(rewritten after every run)")
    gate = p.add_argument_group(
        "gate", "the promotion gate's settings (offline_rl.ope.gate.GateConfig); with --replay "
                "they re-decide stored runs")
    gate.add_argument("--replay", metavar="RESULT", nargs="+",
                      help="re-decide the runs of earlier --json RESULTs (several: run with "
                           "one configuration, e.g. one per domain side by side) with the gate "
                           "settings given here, from their stored estimates and truths (no "
                           "training or rollouts), and print the tables")
    gate.add_argument("--headline", choices=(*ESTIMATORS, *UNWEIGHTED), default=None,
                      help="the estimator every domain's gate decides on (default: each "
                           "domain's, replay for inventory, else dr); e.g. dr to re-decide a "
                           "result file written before the replay estimator existed")
    add_flag(gate, GateConfig, "margin", type=nonnegative_float)
    add_flag(gate, GateConfig, "veto_min_ess", type=nonnegative_float)
    add_flag(gate, GateConfig, "select_by", choices=("estimate", "lower_bound"))
    gate.add_argument("--max-weight-share", type=share, default=None,
                      help="largest share of the trajectory importance weight one episode may "
                           "hold (default: each domain's calibrated limit, else "
                           f"{DEFAULT_MAX_WEIGHT_SHARE:g}; 1 turns the check off)")
    gate.add_argument("--unpaired", action="store_true",
                      help="judge a candidate's own interval against the incumbent's value "
                           "instead of the paired gain")
    gate.add_argument("--multiplicity", choices=MULTIPLICITY, default=GateConfig.multiplicity,
                      help="rule 1 over a night's candidates: holm (family-wise error at most "
                           "alpha/2 per night) or none (each candidate at alpha/2; the rule the "
                           f"stored validation runs were first decided with); default "
                           f"{GateConfig.multiplicity}")
    add_flag(gate, GateConfig, "paired_by", choices=PAIRED_BY)
    gate.add_argument("--without", metavar="CANDIDATE", nargs="+", default=(),
                      help="with --replay: re-decide as if these candidates had not been "
                           "evaluated (e.g. early_late fqe_greedy spibb: the night with the "
                           "other candidates only)")
    p.set_defaults(handler=cmd_validate_ope)


def cmd_validate_ope(args: argparse.Namespace) -> int:
    import dataclasses

    from offline_rl.cli import UsageError
    from offline_rl.experiments.validation.results import (
        format_validation,
        merge_results,
        replay_gate,
        write_json,
    )
    from offline_rl.experiments.validation.run import ValidationConfig, run_validation
    from offline_rl.ope.gate import GateConfig

    gate = GateConfig(headline=args.headline, margin=args.margin, veto_min_ess=args.veto_min_ess,
                      select_by=args.select_by, paired=not args.unpaired,
                      max_weight_share=args.max_weight_share, multiplicity=args.multiplicity,
                      paired_by=args.paired_by)
    if args.replay:
        stored = []
        for name in args.replay:
            path = Path(name)
            try:
                stored.append(json.loads(path.read_text()))
            except (OSError, ValueError) as exc:
                raise UsageError(f"{path}: cannot replay it ({type(exc).__name__}: {exc})",
                                 "pass a file written by `offline-rl validate-ope --json`"
                                 ) from None
        try:
            result = replay_gate(merge_results(stored), gate, without=tuple(args.without))
        except (ValueError, KeyError, TypeError) as exc:
            where = ", ".join(args.replay)
            raise UsageError(f"{where}: cannot replay it ({type(exc).__name__}: {exc})",
                             "pass files written by `offline-rl validate-ope --json`") from None
    else:
        if args.without:
            raise UsageError("--without re-decides stored runs", "add --replay RESULT")
        defaults = ValidationConfig()
        try:
            cfg = ValidationConfig(
                domains=tuple(args.domains or ()), scenarios=tuple(args.scenarios),
                seeds=args.seeds, first_seed=args.first_seed,
                candidates=tuple(args.candidates), constructed=tuple(args.constructed),
                train_steps=args.train_steps,
                truth_episodes=args.truth_episodes, episode_scale=args.episode_scale,
                indifference=args.indifference,
                ope=dataclasses.replace(defaults.ope, fqe_steps=args.fqe_steps,
                                        fqe_folds=args.fqe_folds), gate=gate)
            cfg.check()
        except ValueError as exc:
            raise UsageError(str(exc), "see `offline-rl validate-ope --help`") from None
        result = run_validation(cfg, progress=lambda m: print(m, file=sys.stderr, flush=True),
                                checkpoint=Path(args.json) if args.json else None)
    print(format_validation(result))
    if args.json:
        write_json(result, Path(args.json))
        print(f"json: {args.json}")
    return 0
