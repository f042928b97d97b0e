"""On a CUDA machine: a task trains on the GPU and hands back CPU arrays; a smoke scenario runs
with its sites sharing one GPU in bf16. Skipped without CUDA (docs/platform.md)."""

import numpy as np
import pytest
import torch

from conftest import read_json, run_cli
from sites.device import resolve_compute
from sites.protocol import MetricKey, TrainConfig
from sites.spec import SiteSpec
from sites.tasks.segmentation import SegmentationTask

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_task_trains_and_evaluates_on_the_gpu_and_returns_cpu_arrays(precision):
    task = SegmentationTask(image_size=32, channels=[8, 16], strides=[2], num_res_units=1, n_train=16, n_test=8,
                            batch_size=8, local_steps=3, lr=1e-3)
    task.compute = resolve_compute("cuda", precision)
    data = task.site_data(SiteSpec(id="A", name="a", index=0), seed=0)
    model = task.build_model()
    metrics = task.train(model, data.train, seed=1, config=TrainConfig())
    assert np.isfinite(metrics[MetricKey.TRAIN_LOSS])
    assert all(tensor.device.type == "cpu" for tensor in model.state_dict().values())
    assert 0 <= task.evaluate_on_device(model, data.test)["dice"] <= 1


@pytest.mark.e2e
def test_a_smoke_scenario_runs_with_its_sites_sharing_one_gpu(tmp_path):
    completed = run_cli("size=smoke", "scenario=two_sites", "device=cuda", "precision=bf16",
                        "backend.client_gpus=0.5", f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 0, completed.stderr
    R = np.array(read_json(tmp_path / "matrix.json")["R"])
    assert np.isfinite(R).all() and ((0 <= R) & (R <= 1)).all()
    assert "device: cuda" in (tmp_path / "config.yaml").read_text()
