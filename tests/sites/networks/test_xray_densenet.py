"""PBBL's network: heads on one frozen chest X-ray DenseNet-121, its weights from
torchxrayvision's cache, a state-dict file, or none; never downloaded."""

import pytest
import torch
from monai.networks.nets import DenseNet121

from sites.errors import ConfigError
from sites.networks import xray_densenet
from sites.networks.xray_densenet import FrozenDenseNetDebiasingNet, check_backbone_weights
from sites.tasks import build_task

TASK = {"_target_": "sites.tasks.debiasing.DebiasingTask", "image_size": 32, "channels": [8], "strides": [2],
        "num_res_units": 0, "method": "pbbl",
        "arrangement": "federated", "bias_ratio": 0.9, "q": 0.7, "pseudo_label_repeats": 1, "source_shift": {},
        "n_train": 4, "n_test": 4, "batch_size": 2, "local_steps": 1, "lr": 1e-3}


def torchvision_named_state(seed: int) -> dict[str, torch.Tensor]:
    """A DenseNet-121 state dict with torchvision's (and torchxrayvision's) key names and a classifier."""
    torch.manual_seed(seed)
    state = DenseNet121(spatial_dims=2, in_channels=1, out_channels=18).state_dict()
    return {key.replace(".layers.", ".").replace("class_layers.out", "classifier"): value
            for key, value in state.items()}


def test_only_the_heads_train_and_the_backbone_keeps_its_batch_statistics():
    net = FrozenDenseNetDebiasingNet(num_bias_models=2, weights="none").train()
    assert not net.backbone.training and net.main.training
    before = {key: value.clone() for key, value in net.backbone.state_dict().items()}
    images = torch.randn(4, 1, 32, 32)
    loss = net(images).sum() + net.bias[1](images).sum()
    loss.backward()
    trained = {name for name, p in net.named_parameters() if p.grad is not None}
    assert trained and all(name.startswith(("main.", "bias_heads.1.")) for name in trained)
    assert all(torch.equal(before[key], value) for key, value in net.backbone.state_dict().items())
    assert net.bias_probability(images, range(2)).shape == (4,)


def test_a_torchvision_named_state_dict_file_loads_into_the_backbone(tmp_path):
    state = torchvision_named_state(seed=1)
    path = tmp_path / "densenet121.pt"
    torch.save(state, path)
    net = FrozenDenseNetDebiasingNet(num_bias_models=0, weights=str(path))
    loaded = net.backbone.state_dict()
    assert torch.equal(loaded["denseblock3.denselayer7.layers.conv2.weight"],
                       state["features.denseblock3.denselayer7.conv2.weight"])
    assert torch.equal(loaded["norm5.running_mean"], state["features.norm5.running_mean"])


def test_xrv_weights_missing_from_the_cache_are_refused_without_downloading(tmp_path, monkeypatch):
    monkeypatch.setattr(xray_densenet, "XRV_CACHE", tmp_path)
    with pytest.raises(ConfigError, match=r"^task.backbone_weights: xrv: torchxrayvision's densenet121-res224-all "
                                          r"weights are not in its cache \("):
        build_task({**TASK, "backbone": "densenet121", "backbone_weights": "xrv"})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content, problem", [
    (None, "no such file: {path} (expected xrv, none or a DenseNet-121 state-dict file)"),
    (b"not a checkpoint", "{path} is not a state dict torch can read: "),
    ({"weight": torch.zeros(1)}, "{path}: no features.* keys of a DenseNet-121 state dict"),
])
def test_a_weights_file_that_is_not_a_densenet_state_dict_is_refused(tmp_path, content, problem):
    path = tmp_path / "weights.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(ConfigError) as refused:
        check_backbone_weights(str(path))
        FrozenDenseNetDebiasingNet(0, str(path))
    assert str(refused.value).startswith("task.backbone_weights: " + problem.format(path=path))


def test_the_debiasing_task_builds_the_network_its_backbone_names():
    assert isinstance(build_task({**TASK, "backbone": "densenet121", "backbone_weights": "none"}).build_model(),
                      FrozenDenseNetDebiasingNet)
    with pytest.raises(ConfigError, match=r"^task.backbone: must be 'densenet121' \(got 'resnet'\)$"):
        build_task({**TASK, "backbone": "resnet"})
