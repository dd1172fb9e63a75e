"""``offline-rl ope`` and ``offline-rl validate-ope`` from the command line.

``add_ope_parser(subparsers)`` adds ``ope``: it calls
:func:`offline_rl.ope.public.evaluate_logs`, prints a table of estimates (raw and relative to
the behaviour policy's on-policy value) and the diagnostics, prints every warning as a
``warning:`` line on stderr, and writes the JSON with ``--json``. Malformed input becomes
``offline_rl.cli.UsageError`` (one ``error:`` line plus a ``hint:``, exit code 2).

``add_validate_ope_parser(subparsers)`` adds ``validate-ope``: it runs
:func:`offline_rl.ope.validate.run_validation` (progress on stderr), prints the per-domain
tables, the headline estimator and the gate per validation scenario, and the overall figures,
and writes the JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import math
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
                   help="export directory (with manifest.json), or a table (.parquet or .csv) "
                        "episode_id, step, action, prob")
    p.add_argument("--json", metavar="OUT", help="also write the result as JSON")
    p.add_argument("--n-bootstrap", type=nonnegative_int, default=1000,
                   help="bootstrap resamples of episodes (default 1000; 0: no intervals)")
    p.add_argument("--seed", type=int, default=0, help="seed of FQE and the bootstrap")
    p.add_argument("--alpha", type=_unit_interval(True, True), default=0.05,
                   help="intervals are two-sided 1 - alpha (default 0.05)")
    p.add_argument("--gamma", type=_unit_interval(False, False), default=1.0,
                   help="discount factor (default 1: undiscounted return per episode)")
    p.set_defaults(handler=cmd_ope)


def _fmt(value: float | None, width: int = 10) -> str:
    if value is None or not math.isfinite(value):
        return f"{'n/a':>{width}}"
    return f"{value:>{width}.4f}"


def _relative(value: float | None, base: float) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    diff = value - base
    if base == 0:
        return f"{diff:+.4f}"
    return f"{diff:+.4f} ({100 * diff / abs(base):+.1f}%)"


def format_result(record: dict[str, Any], logs: str, target: str) -> str:
    """The human-readable report of an :meth:`OPEResult.as_json` record."""
    base = record["behavior_value"]
    level = 100 * (1 - record["alpha"])
    lines = [
        f"off-policy evaluation of {target}",
        f"  on {logs}: {record['n_episodes']:,} episodes, {record['n_decisions']:,} decisions; "
        f"gamma {record['gamma']:g}; {level:g}% bootstrap intervals "
        f"({record['n_bootstrap']} resamples); behaviour probabilities "
        f"{record['behavior_prob_source']}",
        "",
        f"{'estimator':<12}{'value':>10}{'low':>10}{'high':>10}   vs behaviour",
        f"{'behaviour':<12}{_fmt(base)}{_fmt(record['behavior_interval']['low'])}"
        f"{_fmt(record['behavior_interval']['high'])}   (on-policy, observed returns)",
    ]
    for name, est in record["estimates"].items():
        lines.append(f"{name:<12}{_fmt(est['value'])}{_fmt(est['low'])}{_fmt(est['high'])}   "
                     + (_relative(est["value"], base) if base is not None else "n/a"))
    lines += ["", "diagnostics:"]
    for key, value in record["diagnostics"].items():
        lines.append(f"  {key:<28}{_fmt(value, 12)}")
    return "\n".join(lines)


def cmd_ope(args: argparse.Namespace) -> int:
    from offline_rl.cli import UsageError
    from offline_rl.ope.public import OPEInputError, evaluate_logs

    try:
        result = evaluate_logs(args.logs, args.target, gamma=args.gamma,
                               n_bootstrap=args.n_bootstrap, alpha=args.alpha, seed=args.seed)
    except OPEInputError as exc:
        raise UsageError(str(exc), exc.hint or "see `offline-rl ope --help` for the formats") \
            from None
    record = result.as_json()
    print(format_result(record, str(args.logs), str(args.target)))
    sys.stdout.flush()
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=2, allow_nan=False) + "\n")
    return 0


# ------------------------------------------------------------------ validate-ope

def add_validate_ope_parser(subparsers: Any) -> None:
    """Adds ``validate-ope`` to an ``argparse`` subparsers action."""
    from offline_rl.ope.estimators import ESTIMATORS
    from offline_rl.ope.gate import DEFAULT_MAX_WEIGHT_SHARE, UNWEIGHTED, GateConfig
    from offline_rl.ope.validate import (
        DEFAULT_SCENARIOS,
        VALIDATION_FQE_STEPS,
        VALIDATION_SCENARIOS,
        ValidationConfig,
    )

    defaults = ValidationConfig  # class-level field defaults: no OPEConfig (torch) import here
    p = subparsers.add_parser(
        "validate-ope", help="check off-policy estimates and gate decisions against simulator "
                             "truth",
        description="Over seeded simulator scenarios (behaviour-policy logs, cheap trained "
                    "candidates, a secretly worse and a rare-action candidate), runs train -> "
                    "evaluate -> gate and compares with the simulator's true values: per "
                    "estimator the median relative error, rank correlation, share of "
                    "candidate pairs a margin apart put in the true order, and interval "
                    "coverage; for the gate the false promotion and missed improvement "
                    "rates; per domain and per scenario.",
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
    p.add_argument("--train-steps", type=positive_int, default=defaults.train_steps,
                   help=f"gradient steps per trained candidate (default {defaults.train_steps})")
    p.add_argument("--fqe-steps", type=positive_int, default=VALIDATION_FQE_STEPS,
                   help=f"FQE gradient steps per candidate (default {VALIDATION_FQE_STEPS})")
    p.add_argument("--truth-episodes", type=positive_int, default=defaults.truth_episodes,
                   help=f"simulator rollouts per true value (default {defaults.truth_episodes})")
    p.add_argument("--episode-scale", type=positive_float, default=defaults.episode_scale,
                   help="multiplies the scenarios' episode counts (default "
                        f"{defaults.episode_scale:g}; e.g. 0.1 for a quick check)")
    p.add_argument("--json", metavar="OUT", help="also write every figure and run as JSON")
    gate = p.add_argument_group(
        "gate", "the promotion gate's settings (offline_rl.ope.gate.GateConfig); with --replay "
                "they re-decide stored runs")
    gate.add_argument("--replay", metavar="RESULT",
                      help="re-decide the runs of an earlier --json RESULT with the gate "
                           "settings given here, from its stored estimates and truths (no "
                           "training or rollouts), and print the tables")
    gate.add_argument("--headline", choices=(*ESTIMATORS, *UNWEIGHTED), default=None,
                      help="the estimator every domain's gate decides on (default: each "
                           "domain's, replay for inventory, else dr); e.g. dr to re-decide a "
                           "result file written before the replay estimator existed")
    gate.add_argument("--margin", type=nonnegative_float, default=GateConfig.margin,
                      help=f"required relative gain over the incumbent (default "
                           f"{GateConfig.margin:g})")
    gate.add_argument("--veto-min-ess", type=nonnegative_float,
                      default=GateConfig.veto_min_ess,
                      help="effective episodes following a candidate to the end that a veto "
                           f"needs (default {GateConfig.veto_min_ess:g})")
    gate.add_argument("--select-by", choices=("estimate", "lower_bound"),
                      default=GateConfig.select_by,
                      help=f"how passing candidates are ranked (default {GateConfig.select_by})")
    gate.add_argument("--max-weight-share", type=share, default=None,
                      help="largest share of the trajectory importance weight one episode may "
                           "hold (default: each domain's calibrated limit, else "
                           f"{DEFAULT_MAX_WEIGHT_SHARE:g}; 1 turns the check off)")
    gate.add_argument("--unpaired", action="store_true",
                      help="judge a candidate's own interval against the incumbent's value "
                           "instead of the paired gain")
    p.set_defaults(handler=cmd_validate_ope)


def cmd_validate_ope(args: argparse.Namespace) -> int:
    import dataclasses

    from offline_rl.cli import UsageError
    from offline_rl.ope.gate import GateConfig
    from offline_rl.ope.validate import (
        ValidationConfig,
        format_validation,
        replay_gate,
        run_validation,
        write_json,
    )

    gate = GateConfig(headline=args.headline, margin=args.margin, veto_min_ess=args.veto_min_ess,
                      select_by=args.select_by, paired=not args.unpaired,
                      max_weight_share=args.max_weight_share)
    if args.replay:
        path = Path(args.replay)
        try:
            stored = json.loads(path.read_text())
            result = replay_gate(stored, gate)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"{path}: cannot replay it ({type(exc).__name__}: {exc})",
                             "pass a file written by `offline-rl validate-ope --json`") from None
    else:
        defaults = ValidationConfig()
        try:
            cfg = ValidationConfig(
                domains=tuple(args.domains or ()), scenarios=tuple(args.scenarios),
                seeds=args.seeds, first_seed=args.first_seed,
                candidates=tuple(args.candidates), train_steps=args.train_steps,
                truth_episodes=args.truth_episodes, episode_scale=args.episode_scale,
                ope=dataclasses.replace(defaults.ope, fqe_steps=args.fqe_steps), gate=gate)
            cfg.check()
        except ValueError as exc:
            raise UsageError(str(exc), "see `offline-rl validate-ope --help`") from None
        result = run_validation(cfg, progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(format_validation(result))
    if args.json:
        write_json(result, Path(args.json))
        print(f"json: {args.json}")
    return 0
