"""One declaration per setting: the library's configuration dataclasses (``TrainingConfig``,
``OPEConfig``, ``GateConfig``, ...) hold each setting's default and, in their docstring's
``Attributes:`` section, its description. The Dagster run configurations (``assets/``) and
the command-line flags read both from here, so a default or a description is written once.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from functools import cache
from typing import Any

_ATTRIBUTE = re.compile(r"^(\s+)(\w+):\s*(.*)$")


@cache
def field_docs(cls: type) -> dict[str, str]:
    """``{field: description}`` from the ``Attributes:`` section of dataclass ``cls``'s
    docstring (Google style: ``name: text``, continued on more deeply indented lines), each
    description on one line. Raises ``ValueError`` naming the class when a field of ``cls``
    has no description, so a new setting cannot ship undocumented."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__name__} is not a dataclass")
    lines = inspect.cleandoc(cls.__doc__ or "").splitlines()
    try:
        start = lines.index("Attributes:") + 1
    except ValueError:
        raise ValueError(f"{cls.__name__}'s docstring has no 'Attributes:' section") from None
    docs: dict[str, list[str]] = {}
    indent: int | None = None
    current: str | None = None
    for line in lines[start:]:
        if line.strip() and not line.startswith(" "):
            break  # the next section
        match = _ATTRIBUTE.match(line)
        if match and (indent is None or len(match.group(1)) == indent):
            indent = len(match.group(1))
            current = match.group(2)
            docs[current] = [match.group(3)]
        elif current is not None and line.strip():
            docs[current].append(line.strip())
    fields = [f.name for f in dataclasses.fields(cls)]
    missing = [f for f in fields if f not in docs]
    if missing:
        raise ValueError(f"{cls.__name__}: no description of {', '.join(missing)} in its "
                         "docstring's 'Attributes:' section")
    return {name: " ".join(" ".join(docs[name]).split()) for name in fields}


_ROLE = re.compile(r":\w+:`~?([^`]+)`")


def describe(cls: type, name: str) -> str:
    """The description of setting ``name`` of dataclass ``cls`` (its whole docstring entry),
    as plain text (reStructuredText's double backquotes and roles removed): what the Dagster
    launchpad shows."""
    docs = field_docs(cls)
    if name not in docs:
        raise ValueError(f"{cls.__name__} has no setting {name!r}")
    return _ROLE.sub(r"\1", docs[name]).replace("``", "")


def summary(cls: type, name: str) -> str:
    """The first sentence of ``describe(cls, name)``: what a command-line help line shows."""
    text = describe(cls, name)
    cut = re.search(r"(?<=[^.\s]\.)\s", text)
    return (text[:cut.start()] if cut else text).rstrip(".")


def default(cls: type, name: str) -> Any:
    """The default of setting ``name`` of dataclass ``cls`` (``ValueError`` if it has none)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            raise ValueError(f"{cls.__name__}.{name} has no default")
    raise ValueError(f"{cls.__name__} has no setting {name!r}")


def add_flag(parser: Any, cls: type, name: str, value: Any = dataclasses.MISSING,
             **kwargs: Any) -> None:
    """Adds ``--<name-with-dashes>`` for setting ``name`` of dataclass ``cls`` to the argparse
    ``parser`` (or argument group): its default is ``value`` (default: the dataclass's; a
    tuple becomes a list), its help :func:`flag_help`; ``kwargs`` (``type``, ``choices``,
    ``nargs``) go to ``add_argument``."""
    shown = default(cls, name) if value is dataclasses.MISSING else value
    parser.add_argument("--" + name.replace("_", "-"),
                        default=list(shown) if isinstance(shown, tuple) else shown,
                        help=flag_help(cls, name, shown), **kwargs)


def flag_help(cls: type, name: str, shown_default: Any = dataclasses.MISSING) -> str:
    """Command-line help for the flag of setting ``name``: its summary and its default
    (``shown_default`` where the flag's default differs from the dataclass's)."""
    value = default(cls, name) if shown_default is dataclasses.MISSING else shown_default
    if isinstance(value, tuple):
        value = " ".join(str(v) for v in value)
    return f"{summary(cls, name)} (default {value})".replace("%", "%%")
