"""Crash points: where tests kill a process in the middle of a write, to check that nothing
is left half-written (the warehouse's transactions, the export registry's publication)."""

from __future__ import annotations

import os
import signal

CRASH_ENV = "OFFLINE_RL_CRASH_AT"
"""Crash tests: a comma-separated list of crash point names (see ``crash_point``)."""


_crash_counts: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Kills this process with SIGKILL if ``$OFFLINE_RL_CRASH_AT`` names ``name``.

    Crash tests set the variable in a child process to die at an exact point of a write
    (e.g. ``warehouse.before_commit``, or ``warehouse.before_commit@3`` for the third time the
    process reaches it) and then check that nothing was half-written. With the variable unset
    this is one dictionary lookup.
    """
    wanted = os.environ.get(CRASH_ENV)
    if not wanted:
        return
    specs = [spec.partition("@") for spec in wanted.split(",")]
    if not any(point == name for point, _, _ in specs):
        return
    seen = _crash_counts[name] = _crash_counts.get(name, 0) + 1
    if any(point == name and (not nth or nth == str(seen)) for point, _, nth in specs):
        os.kill(os.getpid(), signal.SIGKILL)
