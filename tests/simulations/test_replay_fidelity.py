"""The fidelity measurement's per-site statistics of replay and real data
(simulations/replay_fidelity.py), by hand."""

import pytest
import torch
from torch.utils.data import TensorDataset

from simulations.replay_fidelity import _hold_out, _statistics, contrast_ratio
from sites.tasks import build_task
from sites.tasks.segmentation import SegmentationTask


def _task() -> SegmentationTask:
    return build_task({"_target_": "sites.tasks.segmentation.SegmentationTask", "image_size": 16, "channels": [4, 8],
                       "strides": [2], "num_res_units": 0, "n_train": 8, "n_test": 4, "n_validation": 4,
                       "batch_size": 4, "local_steps": 2, "lr": 1e-3})


def test_segmentation_statistics_in_replay_space_by_hand():
    # Two 2 x 2 images, one organ pixel each. Replay space divides z-scores by 3 and clips at 1:
    # organ 1.5 -> 0.5, tissue -0.75 -> -0.25, and one tissue pixel at 6 -> 1 (clipped).
    images = torch.tensor([[[[1.5, -0.75], [-0.75, -0.75]]], [[[-0.75, 1.5], [6.0, -0.75]]]])
    masks = torch.tensor([[[[1, 0], [0, 0]]], [[[0, 1], [0, 0]]]])
    stats = _statistics(_task(), TensorDataset(images, masks))
    # inside: 0.5, 0.5; outside: five at -0.25 and one at 1 -> mean -0.25 / 6
    assert stats["mask_share"] == pytest.approx(0.25)
    assert stats["organ_contrast"] == pytest.approx(0.5 + 0.25 / 6)
    assert stats["mean"] == pytest.approx((2 * 0.5 + 5 * -0.25 + 1.0) / 8)


def test_an_image_without_organ_has_no_contrast():
    stats = _statistics(_task(), TensorDataset(torch.zeros(2, 1, 2, 2), torch.zeros(2, 1, 2, 2, dtype=torch.long)))
    assert stats["mask_share"] == 0 and stats["organ_contrast"] is None


def test_contrast_ratio_is_replay_over_real_and_none_without_a_replayed_organ():
    assert contrast_ratio({"real": {"organ_contrast": -0.2}, "replay": {"organ_contrast": 0.1}}) == pytest.approx(-0.5)
    assert contrast_ratio({"real": {"organ_contrast": 0.4}, "replay": {"organ_contrast": None}}) is None


def test_held_out_training_images_are_a_seeded_disjoint_share_of_at_most_a_quarter():
    data = TensorDataset(torch.arange(40).float(), torch.arange(40) % 2)
    fit, held = _hold_out(data, 6, seed=3)
    assert len(held) == 6 and len(fit) == 34
    assert sorted(torch.cat([fit.tensors[0], held.tensors[0]]).tolist()) == list(range(40))
    assert torch.equal(held.tensors[1], held.tensors[0].long() % 2)  # pairs stay together
    assert torch.equal(_hold_out(data, 6, seed=3)[1].tensors[0], held.tensors[0])
    assert not torch.equal(_hold_out(data, 6, seed=4)[1].tensors[0], held.tensors[0])
    assert len(_hold_out(data, 100, seed=3)[1]) == 10
    assert len(_hold_out(TensorDataset(torch.zeros(3)), 2, seed=0)[1]) == 0
