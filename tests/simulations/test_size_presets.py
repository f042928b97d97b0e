"""``size=paper`` composes with every task, and each task builds its paper-sized network and takes
a training loss on a few samples of its paper-sized data (no training: that is for a GPU)."""

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from sites.protocol import TrainConfig
from sites.spec import SiteSpec
from sites.tasks import build_task

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _composed(*overrides: str) -> dict:
    with initialize_config_dir(config_dir=str(CONFIGS), version_base=None):
        return OmegaConf.to_container(compose("config", overrides=list(overrides)), resolve=True)


# Few samples: a paper-sized grading site would generate 50 validation volumes of 4 x 64 x 128 x 128.
@pytest.mark.parametrize("task, few", [("segmentation", ()), ("grading", ("task.n_validation=2",)), ("debiasing", ())])
def test_the_paper_preset_sets_each_task_s_sizes_and_the_task_builds(task, few):
    default, paper = _composed(f"task={task}"), _composed(f"task={task}", "size=paper", "task.n_train=8",
                                                          "task.n_test=8", *few)
    assert paper["task"]["image_size"] > default["task"]["image_size"]
    assert paper["scenario"]["rounds_per_stage"] > default["scenario"]["rounds_per_stage"]
    built = build_task(paper["task"])
    data = built.load_site(SiteSpec(id="A", name="a", index=0), seed=0)
    torch.manual_seed(0)
    batch = [tensor[:2] for tensor in data.train.tensors]
    loss = built.batch_loss(built.build_model(), batch, TrainConfig(phase=built.phases[0].name))
    assert torch.isfinite(loss)


def test_the_smoke_preset_is_unchanged_by_the_per_task_presets():
    smoke = _composed("task=grading", "size=smoke")
    assert (smoke["task"]["image_size"], smoke["task"]["n_train"], smoke["scenario"]["rounds_per_stage"]) == (32, 16, 1)
