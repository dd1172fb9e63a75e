"""Dagster assets: thin wrappers that read through resources, call offline_rl, and report."""

from typing import Any

from offline_rl.domains import Domain

OWNERS = ["team:ml-platform"]


def domain_asset_args(domain: Domain, stage: str, **kwargs: Any) -> dict[str, Any]:
    """The ``dg.asset`` arguments every per-domain asset shares: daily partitions, the
    domain's group, owners and the domain/stage tags; ``kwargs`` add to or override them."""
    from orchestration.partitions import daily

    return {"partitions_def": daily, "group_name": domain.name, "owners": OWNERS,
            "tags": {"domain": domain.name, "stage": stage}, **kwargs}
