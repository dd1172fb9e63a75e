"""Each setting is declared once: defaults and descriptions come from the dataclasses."""

from __future__ import annotations

import dataclasses

import pytest

from offline_rl.configuration import default, describe, field_docs, flag_help, summary


@dataclasses.dataclass(frozen=True)
class Example:
    """What an example holds.

    Attributes:
        steps: Gradient steps. More is slower:
            e.g. twice the time for twice the steps.
        widths: Hidden layers
            of the network.
        share: Share kept (50% by default).

    Raises:
        nothing: this section is not read.
    """

    steps: int = 10
    widths: tuple[int, ...] = (64, 64)
    share: float = 0.5


def test_descriptions_and_defaults_come_from_the_dataclass():
    assert field_docs(Example) == {
        "steps": "Gradient steps. More is slower: e.g. twice the time for twice the steps.",
        "widths": "Hidden layers of the network.",
        "share": "Share kept (50% by default)."}
    assert summary(Example, "steps") == "Gradient steps"
    assert default(Example, "widths") == (64, 64)
    assert flag_help(Example, "widths") == "Hidden layers of the network (default 64 64)"
    assert flag_help(Example, "share", shown_default=0.3) == \
        "Share kept (50%% by default) (default 0.3)"  # argparse's % escaped
    with pytest.raises(ValueError, match="Example has no setting 'nope'"):
        describe(Example, "nope")


def test_an_undocumented_setting_is_an_error_naming_it():
    @dataclasses.dataclass
    class Undocumented:
        """Half documented.

        Attributes:
            a: Documented.
        """

        a: int = 1
        b: int = 2

    with pytest.raises(ValueError, match="Undocumented: no description of b"):
        field_docs(Undocumented)


def test_every_library_configuration_documents_every_setting():
    from offline_rl.algos.config import TrainingConfig
    from offline_rl.ope.evaluate import OPEConfig
    from offline_rl.ope.gate import GateConfig

    for cls in (TrainingConfig, OPEConfig, GateConfig):
        docs = field_docs(cls)
        assert set(docs) == {f.name for f in dataclasses.fields(cls)}
        assert all(len(text) > 5 for text in docs.values()), cls


def test_markup_is_removed_from_descriptions():
    from offline_rl.ope.evaluate import OPEConfig

    text = describe(OPEConfig, "fqe_backend")
    assert "``" not in text and ":mod:" not in text
    assert text.startswith('"torch" (offline_rl.ope.fqe_torch, any policy')


def test_add_flag_declares_a_flag_from_the_setting():
    import argparse

    from offline_rl.configuration import add_flag

    parser = argparse.ArgumentParser()
    add_flag(parser, Example, "steps", type=int)
    add_flag(parser, Example, "widths", type=int, nargs="+")
    add_flag(parser, Example, "share", 0.25, type=float)
    args = parser.parse_args([])
    assert (args.steps, args.widths, args.share) == (10, [64, 64], 0.25)
    assert parser.parse_args(["--steps", "3"]).steps == 3
    text = parser.format_help()
    assert "Gradient steps (default 10)" in text and "(default 0.25)" in text
