"""The registry of decision domains: every pipeline stage is generated from these.

A domain is one module defining ``DOMAIN`` (an ``offline_rl.domains.base.Domain``): the
landing datasets it owns, its transitions query, its part of the simulated shop and its
gate settings. The registry holds

* every module of this package that defines ``DOMAIN``, and
* the modules named in ``$OFFLINE_RL_DOMAINS`` (importable module names, separated by commas),
  for domains that live outside the package (a team's own package, or a single file on
  ``PYTHONPATH``),

listed by ``Domain.order``, then by name. Nothing else names a domain: the Dagster
definitions, ingestion, the simulator's logs and truth, the command line and the generated
docs all read this registry. The environment variable is read on every call, so a process
that changes it sees the change; Dagster's definitions read it once, when they are loaded.
"""

from __future__ import annotations

import functools
import importlib
import os
import pkgutil
from types import ModuleType

from offline_rl.data.schemas import SourceSchema
from offline_rl.domains.base import Domain

DOMAINS_ENV = "OFFLINE_RL_DOMAINS"
"""Comma-separated module names of further domains (each defines ``DOMAIN``)."""


@functools.cache
def _package_modules() -> tuple[str, ...]:
    """The modules of this package that define ``DOMAIN``."""
    names = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "DOMAIN"):
            names.append(module.__name__)
    return tuple(names)


def _extra_modules() -> tuple[str, ...]:
    raw = os.environ.get(DOMAINS_ENV, "")
    return tuple(dict.fromkeys(m.strip() for m in raw.split(",") if m.strip()))


def _load(module_name: str) -> tuple[ModuleType, Domain]:
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"${DOMAINS_ENV} names module {module_name!r}, which cannot be "
                         f"imported: {exc}") from exc
    domain = getattr(module, "DOMAIN", None)
    if not isinstance(domain, Domain):
        raise TypeError(f"{module_name}.DOMAIN must be an offline_rl.domains.base.Domain")
    return module, domain


@functools.cache
def _registry(extra: tuple[str, ...]) -> dict[str, tuple[ModuleType, Domain]]:
    found: dict[str, tuple[ModuleType, Domain]] = {}
    for module_name in _package_modules() + extra:
        module, domain = _load(module_name)
        if domain.name in found and found[domain.name][0] is not module:
            raise ValueError(f"two modules define the domain {domain.name!r}: "
                             f"{found[domain.name][0].__name__} and {module_name}")
        found[domain.name] = (module, domain)
    ordered = sorted(found.values(), key=lambda md: (md[1].order, md[1].name))
    registry = {d.name: (m, d) for m, d in ordered}
    _check_landing([d for _, d in registry.values()])
    return registry


def _check_landing(domains: list[Domain]) -> None:
    owners: dict[str, str] = {}
    for d in domains:
        for schema in d.landing:
            if schema.name in owners:
                raise ValueError(f"landing dataset {schema.name!r} is declared by two domains: "
                                 f"{owners[schema.name]} and {d.name}")
            owners[schema.name] = d.name
    for d in domains:
        missing = [s for s in d.sources if s not in owners]
        if missing:
            raise ValueError(f"domain {d.name!r} reads landing dataset(s) "
                             f"{', '.join(missing)} that no domain declares")


def _current() -> dict[str, tuple[ModuleType, Domain]]:
    return _registry(_extra_modules())


def domain_names() -> tuple[str, ...]:
    """The registered domains' names, in the order the pipeline and the reports list them."""
    return tuple(_current())


def _entry(name: str) -> tuple[ModuleType, Domain]:
    registry = _current()
    if name not in registry:
        raise ValueError(f"unknown domain {name!r}; choose one of: {', '.join(registry)}")
    return registry[name]


def get_domain(name: str) -> Domain:
    """The domain called ``name``; ``ValueError`` naming the choices if there is none."""
    return _entry(name)[1]


def domain_module(name: str) -> ModuleType:
    """The module that defines the domain ``name`` (its docstring is the domain's doc)."""
    return _entry(name)[0]


def all_domains() -> list[Domain]:
    """Every registered domain, in ``domain_names()`` order."""
    return [d for _, d in _current().values()]


def landing_schemas() -> dict[str, SourceSchema]:
    """Every landing dataset the registered domains declare, by name, in domain order."""
    return {s.name: s for d in all_domains() for s in d.landing}


__all__ = ["DOMAINS_ENV", "Domain", "all_domains", "domain_module", "domain_names",
           "get_domain", "landing_schemas"]
