"""Tests of the PNG charts: valid, deterministic, sized by their input, clear errors."""

from __future__ import annotations

import base64
import math
import struct

import numpy as np
import pytest

from offline_rl.plots import (
    IntervalRow,
    Reference,
    action_distribution,
    data_uri,
    forest_plot,
    learning_curves,
    markdown_image,
    reward_histogram,
)

ROWS = [
    IntervalRow("bc", "dm", 5.4, 5.3, 5.5),
    IntervalRow("bc", "dr", 4.6, 3.3, 6.0),
    IntervalRow("double_dqn", "dr", 9.9, 7.1, 14.1),
]


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from the PNG header's IHDR chunk."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert png[12:16] == b"IHDR"
    return struct.unpack(">II", png[16:24])


def test_forest_plot_is_a_deterministic_png_sized_by_its_rows():
    refs = [Reference("behaviour", 5.17, 4.95, 5.36), Reference("bar", 5.27, style="--")]
    first = forest_plot(ROWS, refs, title="t")
    assert first == forest_plot(ROWS, refs, title="t")
    assert png_size(first) == (800, 260)  # 3 rows + 2 policies: the minimum height
    many = [IntervalRow(f"p{i // 3}", f"e{i % 3}", float(i), i - 1.0, i + 1.0)
            for i in range(30)]
    assert png_size(forest_plot(many)) == (800, 100 + 22 * (30 + 10))


def test_forest_plot_accepts_mappings_tuples_and_missing_values():
    rows = [{"policy": "a", "estimator": "dm", "value": 1.0, "low": 0.5, "high": 1.5},
            ("a", "snpdis", math.nan), ("b", "dr", 2.0)]
    png = forest_plot(rows, [Reference("behaviour", 1.2)])
    assert png_size(png)[0] == 800
    assert png != forest_plot(rows[:2], [Reference("behaviour", 1.2)])
    with pytest.raises(ValueError, match="rows: nothing to plot"):
        forest_plot([])


def test_learning_curves_pick_the_loss_and_reject_metricless_points():
    curves = {"bc": [{"epoch": 1.0, "step": 500.0, "loss": 1.0, "time_step": 0.01},
                     {"epoch": 2.0, "step": 1000.0, "loss": 0.7, "time_step": 0.01}],
              "cql": [{"epoch": 1.0, "step": 500.0, "loss": 2.0}]}
    png = learning_curves(curves)
    assert png_size(png) == (800, 360)
    assert png != learning_curves(curves, metric="epoch")
    with pytest.raises(ValueError, match="no metric"):
        learning_curves({"bc": [{"step": 1.0, "epoch": 1.0, "time_step": 0.1}]})
    with pytest.raises(ValueError, match="nothing to plot"):
        learning_curves({"bc": []})


def test_action_distribution_checks_lengths():
    png = action_distribution([0.5, 0.3, 0.2], {"bc": [1.0, 0.0, 0.0]},
                              action_names=["a", "b", "c"])
    assert png_size(png) == (800, 360)
    with pytest.raises(ValueError, match=r"\['bc'\] do not have 3 action shares"):
        action_distribution([0.5, 0.3, 0.2], {"bc": [1.0, 0.0]})
    with pytest.raises(ValueError, match="action_names: expected 3 names"):
        action_distribution([0.5, 0.3, 0.2], {}, action_names=["a"])


def test_reward_histogram_names_the_first_bad_row():
    rewards = np.r_[np.zeros(50), np.arange(1.0, 11.0)]
    assert png_size(reward_histogram(rewards)) == (800, 360)
    with pytest.raises(ValueError, match="non-finite value inf at row 2"):
        reward_histogram([0.0, 1.0, math.inf])
    with pytest.raises(ValueError, match="nothing to plot"):
        reward_histogram([])


def test_markdown_image_embeds_the_png_as_base64():
    png = forest_plot(ROWS)
    md = markdown_image(png, "estimates [bc]")
    prefix = "![estimates \\[bc\\]](data:image/png;base64,"
    assert md.startswith(prefix) and md.endswith(")")
    assert base64.b64decode(md[len(prefix):-1]) == png
    assert data_uri(png) == md[md.index("(") + 1:-1]
    with pytest.raises(ValueError, match="not PNG data"):
        markdown_image(b"GIF89a", "x")
