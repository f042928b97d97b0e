"""MC3, dual attention and the multi-branch network: shapes, kernels, and what attention mixes."""

import pytest
import torch

from sites.networks.dual_attention import DualAttention, SliceAttention, SpatialAttention
from sites.networks.mc3 import MC3
from sites.networks.multi_branch_mc3 import MultiBranchMC3


@pytest.mark.parametrize("attention", [False, True])
@pytest.mark.parametrize("in_channels", [1, 4])
def test_mc3_maps_volumes_to_logits_and_features(in_channels, attention):
    net = MC3(in_channels, num_classes=2, channels=(4, 8, 16), conv3d_stages=1, attention=attention)
    x = torch.randn(3, in_channels, 6, 16, 16)
    assert net(x).shape == (3, 2)
    assert net.features(x).shape == (3, 16)


def test_mc3_convolves_in_3d_first_and_within_slices_after():
    net = MC3(1, 2, channels=(4, 8, 16), conv3d_stages=1, attention=False)
    depths = [module.weight.shape[2] for stage in net.stages for module in stage.conv.modules()
              if isinstance(module, torch.nn.Conv3d)]
    assert depths == [3, 3, 1, 1, 1, 1]  # two convolutions per residual unit
    with pytest.raises(ValueError, match="conv3d_stages"):
        MC3(1, 2, channels=(4, 8), conv3d_stages=3, attention=False)


def test_mc3_keeps_the_slices_and_halves_the_slice_plane_per_stage():
    net = MC3(1, 2, channels=(4, 8, 16), conv3d_stages=1, attention=False)
    assert net.stages(torch.randn(2, 1, 6, 16, 16)).shape == (2, 16, 6, 2, 2)


def test_multi_branch_mc3_gives_one_prediction_per_modality_and_averages_them():
    net = MultiBranchMC3(4, 2, channels=(4, 8), conv3d_stages=1, attention=True)
    x = torch.randn(2, 4, 4, 8, 8)
    branch_logits = net.branch_logits(x)
    assert branch_logits.shape == (2, 4, 2)
    torch.testing.assert_close(net(x), branch_logits.mean(dim=1))
    # Branch m sees only modality m.
    changed = x.clone()
    changed[:, 2] += 1.0
    differs = (net.branch_logits(changed) - branch_logits).abs().sum(dim=(0, 2)) > 0
    assert differs.tolist() == [False, False, True, False]


def _turned_on(module):
    """Set every residual scale (the only one-element parameters) to 1."""
    for parameter in module.parameters():
        if parameter.shape == (1,):
            parameter.data.fill_(1.0)
    return module


@pytest.mark.parametrize("block", [SpatialAttention, SliceAttention, DualAttention])
def test_attention_starts_as_the_identity_and_keeps_the_shape(block):
    x = torch.randn(2, 16, 5, 4, 3)
    module = block(16)
    torch.testing.assert_close(module(x), x)
    _turned_on(module)
    assert module(x).shape == x.shape
    assert not torch.allclose(module(x), x)


def test_spatial_attention_mixes_positions_within_a_slice_only():
    module = _turned_on(SpatialAttention(8))
    x = torch.randn(1, 8, 4, 3, 3)
    changed = x.clone()
    changed[:, :, 1, 0, 0] += 5.0  # one position of slice 1
    delta = (module(changed) - module(x)).abs().sum(dim=(0, 1))
    assert delta[1, 2, 2] > 0  # other positions of the same slice move
    assert delta[[0, 2, 3]].sum() == 0  # other slices do not


def test_slice_attention_mixes_slices():
    module = _turned_on(SliceAttention(8))
    x = torch.randn(1, 8, 4, 3, 3)
    changed = x.clone()
    changed[:, :, 1] += 5.0
    delta = (module(changed) - module(x)).abs().sum(dim=(0, 1, 3, 4))
    assert (delta > 0).all()
