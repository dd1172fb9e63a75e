"""Dagster assets: thin wrappers that read through resources, call offline_rl, and report."""

from collections.abc import Callable
from typing import Any

from pydantic import Field

from offline_rl.configuration import default, describe
from offline_rl.domains import Domain
from offline_rl.tracking import Tracked, Tracker

OWNERS = ["team:ml-platform"]


def setting(cls: type, name: str, **constraints: Any) -> Any:
    """A field of a Dagster run configuration that is setting ``name`` of the library's
    configuration dataclass ``cls``: its default and its description are read from there
    (:mod:`offline_rl.configuration`), so they are declared once; ``constraints`` are
    pydantic's (``ge``, ``gt``, ...). A tuple default becomes a list, as Dagster's config
    system has no tuples."""
    value = default(cls, name)
    return Field(default=list(value) if isinstance(value, tuple) else value,
                 description=describe(cls, name), **constraints)


def domain_asset_args(domain: Domain, stage: str, **kwargs: Any) -> dict[str, Any]:
    """The ``dg.asset`` arguments every per-domain asset shares: the partitions (a day of
    logs for the transitions, a night for every later stage), the domain's group, owners and
    the domain/stage tags; ``kwargs`` add to or override them."""
    from orchestration import partitions

    days = partitions.daily if stage == "transitions" else partitions.nights
    return {"partitions_def": days, "group_name": domain.name, "owners": OWNERS,
            "tags": {"domain": domain.name, "stage": stage}, **kwargs}


def track(context: Any, tracker: Tracker | None, call: Callable[[Tracker], Tracked]
          ) -> dict[str, str]:
    """Runs one MLflow tracking call when tracking is on (``DataHome.tracker``) and returns
    its outcome as asset metadata; a failure is a warning in the run's log, never an error."""
    if tracker is None:
        return {}
    outcome = call(tracker)
    if not outcome.ok:
        context.log.warning(outcome.message)
    return outcome.metadata()
