"""Tests of the OPE report in markdown and HTML."""

from __future__ import annotations

import base64
import re

import pytest

from offline_rl.ope.diagnostics import Diagnostics
from offline_rl.ope.estimators import Estimate
from offline_rl.ope.evaluate import PolicyEvaluation
from offline_rl.ope.gate import GateConfig, Incumbent, decide
from offline_rl.report import estimate_rows, markdown_table, ope_report, ope_report_html

DIAG = Diagnostics(ess=500.0, ess_fraction=0.05, per_decision_ess_fraction=0.2,
                   max_weight_share=0.01, rare_action_rate=0.0, action_match_rate=0.3)
BEHAVIOR = Estimate("behavior", 5.0, 4.8, 5.2, 0.1)


def _evaluation(name: str, dr: tuple[float, float, float], dm: float) -> PolicyEvaluation:
    return PolicyEvaluation(name, {"dr": Estimate("dr", *dr, 0.3),
                                   "dm": Estimate("dm", dm, dm - 0.4, dm + 0.4, 0.2)},
                            DIAG, 0.5)


EVALUATIONS = [_evaluation("good", (6.0, 5.5, 6.5), 6.2),
               _evaluation("<weak|one>", (4.0, 3.0, 5.0), 4.5)]


def _decision():
    return decide(EVALUATIONS, Incumbent("behavior", 5.0, 4.8, 5.2),
                  GateConfig(margin=0.02, confirm_with=()))


def test_estimate_rows_are_raw_and_relative_to_the_behaviour_value():
    rows = estimate_rows(BEHAVIOR, EVALUATIONS)
    assert [(r["policy"], r["estimator"]) for r in rows] == [
        ("good", "dr"), ("good", "dm"), ("<weak|one>", "dr"), ("<weak|one>", "dm")]
    assert rows[0]["vs_behavior"] == pytest.approx(1.0)
    assert rows[0]["relative"] == "+20.0%"
    assert rows[2]["relative"] == "-20.0%"


def test_markdown_report_has_plot_tables_and_decision():
    decision = _decision()
    assert decision.promoted and decision.candidate == "good"
    text = ope_report("recommendation", "2026-10-07", BEHAVIOR, EVALUATIONS, decision)
    assert text.startswith("# Off-policy evaluation: recommendation, 2026-10-07")
    assert "Decision: **promoted good over behavior (decided on dr's lower bound)**" in text
    image = re.search(r"!\[forest plot of the estimates, recommendation 2026-10-07\]"
                      r"\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", text)
    assert image and base64.b64decode(image.group(1)).startswith(b"\x89PNG")
    assert "| good | dr | 6 | 5.5 | 6.5 | 1 | +20.0% |" in text
    assert "\\<weak\\|one>" not in text and "<weak\\|one>" in text  # pipes escaped in cells
    assert "## Diagnostics" in text and "| good | 500 | 0.05 |" in text
    assert "- promoted good over behavior" in text
    assert "## Gate decision" in text


def test_markdown_report_without_decision_or_images():
    text = ope_report("cart", "2026-10-07", BEHAVIOR, EVALUATIONS, images=False)
    assert "data:image/png" not in text
    assert "Gate decision" not in text and "Decision:" not in text
    assert markdown_table([]) == "_(no rows)_"


def test_html_report_is_self_contained_and_escaped():
    page = ope_report_html("recommendation", "2026-10-07", BEHAVIOR, EVALUATIONS, _decision())
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert '<img src="data:image/png;base64,' in page
    assert not re.search(r"""(src|href)=["'](?!data:)""", page)  # nothing to fetch
    assert "&lt;weak|one&gt;" in page and "<weak|one>" not in page
    assert '<p class="verdict promoted">Decision: promoted good over behavior' in page
    assert '<td class="num">6</td>' in page and "<td>+20.0%</td>" in page
    assert "<li>promoted good over behavior</li>" in page
    kept = decide([EVALUATIONS[1]], Incumbent("behavior", 5.0, 4.8, 5.2))
    page = ope_report_html("recommendation", "2026-10-07", BEHAVIOR, EVALUATIONS[1:], kept)
    assert '<p class="verdict kept">Decision: kept incumbent behavior</p>' in page
