"""The registry of decision domains: every pipeline stage is generated from these.

A domain is one module of this package defining ``DOMAIN`` (an ``offline_rl.domains.base.Domain``).
To add one, write the module (and any SQL it needs) and add its name to ``DOMAIN_NAMES``.
"""

from __future__ import annotations

import importlib

from offline_rl.domains.base import Domain

DOMAIN_NAMES: tuple[str, ...] = ("recommendation", "cart", "inventory", "ads", "pricing")
"""Registered domains, in the order the pipeline and the reports list them."""


def get_domain(name: str) -> Domain:
    """The domain called ``name``; ``ValueError`` naming the choices if there is none."""
    if name not in DOMAIN_NAMES:
        raise ValueError(f"unknown domain {name!r}; choose one of: {', '.join(DOMAIN_NAMES)}")
    domain = importlib.import_module(f"offline_rl.domains.{name}").DOMAIN
    if not isinstance(domain, Domain) or domain.name != name:
        raise TypeError(f"offline_rl.domains.{name}.DOMAIN must be a Domain named {name!r}")
    return domain


def all_domains() -> list[Domain]:
    """Every registered domain, in ``DOMAIN_NAMES`` order."""
    return [get_domain(n) for n in DOMAIN_NAMES]


__all__ = ["DOMAIN_NAMES", "Domain", "all_domains", "get_domain"]
