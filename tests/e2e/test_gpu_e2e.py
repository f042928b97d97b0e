"""On a CUDA machine: a task trains on the GPU and hands back CPU arrays; so does the SMD
generator, whose samples match the CPU's start; a smoke scenario runs with its sites sharing one
GPU in bf16. Skipped without CUDA (docs/platform.md)."""

import numpy as np
import pytest
import torch
from conftest import read_json, run_cli

from sites.device import resolve_compute
from sites.diffusion import sample, train_generator
from sites.networks.site_diffusion import SiteDiffusion
from sites.protocol import MetricKey, TrainConfig
from sites.spec import SiteSpec
from sites.tasks import build_task

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_task_trains_and_evaluates_on_the_gpu_and_returns_cpu_arrays(precision):
    task = build_task({"_target_": "sites.tasks.segmentation.SegmentationTask", "image_size": 32, "channels": [8, 16],
                       "strides": [2], "num_res_units": 1, "n_train": 16, "n_test": 8, "n_validation": 8,
                       "batch_size": 8, "local_steps": 3, "lr": 1e-3})
    task.compute = resolve_compute("cuda", precision)
    data = task.site_data(SiteSpec(id="A", name="a", index=0), seed=0)
    model = task.build_model()
    metrics = task.train(model, data.train, seed=1, config=TrainConfig())
    assert np.isfinite(metrics[MetricKey.TRAIN_LOSS])
    assert all(tensor.device.type == "cpu" for tensor in model.state_dict().values())
    assert 0 <= task.evaluate_on_device(model, data.test)["dice"] <= 1


def test_the_smd_generator_trains_and_samples_on_the_gpu_and_returns_cpu_tensors():
    torch.manual_seed(0)
    network = SiteDiffusion(2, 1, 8, 2, embed_dim=16, channels=(8, 16), heads=2)
    prompt = torch.nn.Parameter(torch.randn(4, 16))
    start = prompt.detach().clone()
    gpu = resolve_compute("cuda", "fp32")
    metrics = train_generator(network, prompt, torch.rand(16, 1, 8, 8) * 2 - 1, torch.arange(16) % 2, steps=3,
                              batch_size=4, lr=1e-2, seed=0, compute=gpu)
    assert np.isfinite(metrics[MetricKey.GENERATOR_LOSS])
    assert prompt.device.type == "cpu" and not torch.equal(prompt.detach(), start)
    assert all(tensor.device.type == "cpu" for tensor in network.state_dict().values())
    classes = torch.arange(6) % 2
    on_gpu = sample(network, prompt.detach(), classes, 6, sampling_steps=4, seed=3, compute=gpu)
    on_cpu = sample(network, prompt.detach(), classes, 6, sampling_steps=4, seed=3)
    # the same CPU draws start both; only the kernels' rounding differs
    assert on_gpu.device.type == "cpu" and torch.allclose(on_gpu, on_cpu, atol=1e-3)


@pytest.mark.e2e
def test_a_smoke_scenario_runs_with_its_sites_sharing_one_gpu(tmp_path):
    completed = run_cli("size=smoke", "scenario=two_sites", "device=cuda", "precision=bf16",
                        "backend.client_gpus=0.5", f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 0, completed.stderr
    R = np.array(read_json(tmp_path / "matrix.json")["R"])
    assert np.isfinite(R).all() and ((0 <= R) & (R <= 1)).all()
    assert "device: cuda" in (tmp_path / "config.yaml").read_text()
