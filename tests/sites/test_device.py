"""Devices and precision: resolution, refusals, CPU training through the device path, bf16 autocast,
the Ray backend's GPU share."""

import pytest
import torch

from simulations.engine import ray_backend_config
from sites.device import Compute, resolve_compute
from sites.errors import ConfigError
from sites.protocol import TrainConfig
from sites.spec import SiteSpec
from sites.tasks import build_task
from sites.tasks.segmentation import SegmentationTask


@pytest.mark.parametrize("cuda, device, resolved", [
    (False, "auto", "cpu"), (True, "auto", "cuda"), (True, "cpu", "cpu"), (True, "cuda", "cuda"), (False, "cpu", "cpu"),
])
def test_auto_picks_cuda_only_where_torch_sees_a_gpu(monkeypatch, cuda, device, resolved):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert resolve_compute(device, "fp32") == Compute(resolved, "fp32")


@pytest.mark.parametrize("device, precision, key", [
    ("cuda", "fp32", "device"),      # no GPU
    ("cpu", "bf16", "precision"),    # bf16 autocasts on CUDA only
    ("auto", "bf16", "precision"),   # auto resolves to the CPU here
])
def test_what_cannot_run_here_names_its_key(monkeypatch, device, precision, key):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError) as raised:
        resolve_compute(device, precision)
    assert raised.value.key == key and "\n" not in str(raised.value)


def test_bf16_autocasts_the_forward_pass_and_fp32_leaves_it_alone():
    layer, x = torch.nn.Linear(4, 3), torch.randn(2, 4)
    with Compute("cpu", "bf16").autocast():  # CPU autocast shows the mechanism the CUDA path uses
        assert layer(x).dtype == torch.bfloat16
    with Compute("cpu", "fp32").autocast():
        assert layer(x).dtype == torch.float32


def _task() -> SegmentationTask:
    return build_task({"_target_": "sites.tasks.segmentation.SegmentationTask", "image_size": 16, "channels": [4, 8],
                       "strides": [2], "num_res_units": 0, "n_train": 8, "n_test": 4, "n_validation": 4,
                       "batch_size": 4, "local_steps": 2, "lr": 1e-3})


def test_a_task_set_to_the_cpu_trains_and_evaluates_as_by_default():
    site = SiteSpec(id="A", name="a", index=0)
    results = []
    for compute in (None, Compute("cpu", "fp32")):
        task = _task()
        if compute is not None:
            task.compute = compute
        data = task.site_data(site, seed=0)
        torch.manual_seed(0)
        model = task.build_model()
        metrics = task.train(model, data.train, seed=1, config=TrainConfig())
        results.append((metrics, task.evaluate_on_device(model, data.test), model.state_dict()))
    (default_train, default_eval, default_state), (cpu_train, cpu_eval, cpu_state) = results
    assert default_train == cpu_train and default_eval == cpu_eval
    assert all(torch.equal(default_state[k], cpu_state[k]) and cpu_state[k].device.type == "cpu" for k in cpu_state)


def test_the_backend_gives_each_site_its_gpu_share_and_refuses_what_does_not_fit():
    assert ray_backend_config(1, None, False)["client_resources"] == {"num_cpus": 1, "num_gpus": 0.0}
    gpus = torch.cuda.device_count()
    with pytest.raises(ConfigError) as raised:
        ray_backend_config(1, None, False, client_gpus=gpus + 0.5)
    assert raised.value.key == "backend.client_gpus"
    with pytest.raises(ConfigError) as raised:
        ray_backend_config(1, None, False, client_gpus=0.0, device="cuda")
    assert raised.value.key == "backend.client_gpus" and "device" in str(raised.value)
