"""Memorizability, generalizability, BWT and forgetting against hand-computed values."""

import numpy as np
import pytest

from server.continual_metrics import backward_transfer, forgetting, generalizability, memorizability, summarize

# Three sites arrive at stages 1, 2, 3; a fourth is held out.
R = np.array([
    [0.8, 0.2, 0.1, 0.3],
    [0.5, 0.9, 0.2, 0.4],
    [0.6, 0.7, 0.9, 0.5],
])
ARRIVAL = [1, 2, 3, None]


def test_memorizability_and_generalizability_per_stage():
    assert memorizability(R, ARRIVAL, 1) == pytest.approx(0.8)
    assert memorizability(R, ARRIVAL, 2) == pytest.approx((0.5 + 0.9) / 2)
    assert generalizability(R, ARRIVAL, 1) == pytest.approx((0.2 + 0.1 + 0.3) / 3)
    assert generalizability(R, ARRIVAL, 3) == pytest.approx(0.5)


def test_bwt_and_forgetting():
    # BWT over sites arrived before the last stage: (0.6 - 0.8 + 0.7 - 0.9) / 2
    assert backward_transfer(R, ARRIVAL) == pytest.approx(-0.2)
    # forgetting: site 1 best before T is 0.8 -> 0.6; site 2 best 0.9 -> 0.7
    assert forgetting(R, ARRIVAL) == pytest.approx(0.2)


def test_summary_keys_and_undefined_values():
    summary = summarize(R[:1, :1], [1])  # one site, one stage: nothing unseen, nothing to forget
    assert summary["memorizability"] == pytest.approx(0.8)
    assert summary["generalizability"] is None
    assert summary["bwt"] is None and summary["forgetting"] is None
    assert [s["stage"] for s in summarize(R, ARRIVAL)["per_stage"]] == [1, 2, 3]
