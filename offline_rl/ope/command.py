"""``offline-rl ope``: evaluate any policy on any logged decisions from the command line.

``add_ope_parser(subparsers)`` adds the subcommand to the ``offline-rl`` parser; the handler
calls :func:`offline_rl.ope.public.evaluate_logs`, prints a table of estimates (raw and
relative to the behaviour policy's on-policy value) and the diagnostics, prints every
warning as a ``warning:`` line on stderr, and writes the JSON with ``--json``. Malformed input
becomes ``offline_rl.cli.UsageError`` (one ``error:`` line plus a ``hint:``, exit code 2).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from offline_rl.argtypes import nonnegative_int


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
