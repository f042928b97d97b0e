"""Task capabilities (sites/tasks/capabilities.py): a user's task with only the base contract runs
plain federations and is refused, before anything starts, for every feature that needs more;
the built-in tasks have the capabilities they implement."""

import pytest
import torch
from conftest import ROOT
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from torch import nn
from torch.utils.data import TensorDataset

from simulations.run import prepare
from sites.errors import ConfigError
from sites.spec import SiteSpec
from sites.tasks import (
    ClassLogits,
    LabelCorruption,
    Phase,
    PhaseStatistics,
    ReferenceData,
    ReplayCodec,
    SiteData,
    Task,
    build_task,
)

CAPABILITIES = (ReplayCodec, ClassLogits, LabelCorruption, ReferenceData, PhaseStatistics)
CLASS_LOGITS = "sites.tasks.ClassLogits (logits, targets, per_sample_loss, sample_losses)"


class MinimalTask(Task):
    """A user's task with only what every task has: a model, data, a loss and metrics."""

    primary_metric = "accuracy"

    def build_model(self) -> nn.Module:
        return nn.Linear(4, 2)

    def load_site(self, site: SiteSpec, seed: int) -> SiteData:
        generator = torch.Generator().manual_seed(seed)
        return SiteData(*(TensorDataset(torch.randn(n, 4, generator=generator), torch.arange(n) % 2)
                          for n in (self.n_train, self.n_test)))

    def batch_loss(self, model, batch, config):
        return nn.functional.cross_entropy(model(batch[0]), batch[1])

    def evaluate(self, model, data):
        x, y = data.tensors
        return {"accuracy": float((model(x).argmax(dim=1) == y).float().mean()), "num-examples": len(y)}


class CountingTask(MinimalTask):
    """A phase that asks the sites for counts, without the counts."""

    @property
    def phases(self) -> list[Phase]:
        return [Phase("count", statistics=True)]


class ReplayableTask(MinimalTask):
    """A replay space, written without naming :class:`ReplayCodec`: protocols are structural."""

    replay_classes = 2
    replay_shape = (1, 2)

    def encode_replay(self, data):
        return data.tensors[0].reshape(-1, 1, 2, 2), data.tensors[1]

    def decode_replay(self, x, classes):
        return TensorDataset(x.flatten(1), classes)


def _prepare(tmp_path, task: type[Task] | None, *overrides: str):
    """:func:`prepare` the config of ``overrides`` with ``task`` (``None``: the configured one)."""
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base=None):
        cfg = compose(config_name="config", overrides=["size=smoke", *overrides])
    if task is not None:
        cfg.task = OmegaConf.create({"_target_": f"{task.__module__}.{task.__qualname__}", "n_train": 8, "n_test": 4,
                                     "batch_size": 4, "local_steps": 1, "lr": 0.01})
    return prepare(cfg, tmp_path)


def test_the_base_contract_runs_a_plain_federation(tmp_path):
    assert isinstance(_prepare(tmp_path, MinimalTask).plan.task, MinimalTask)


@pytest.mark.parametrize("overrides, key, message", [
    (("strategy=pga",), "replay",
     "MinimalTask does not implement sites.tasks.ReplayCodec (replay_classes, replay_shape, encode_replay, "
     "decode_replay), needed by replay=smd"),
    (("strategy=ewc",), "strategy", f"MinimalTask does not implement {CLASS_LOGITS}, needed by EWC"),
    (("scenario=site_withdrawal",), "task",
     f"MinimalTask does not implement {CLASS_LOGITS}, needed by a site withdrawal"),
    (("scenario=site_withdrawal", "scenario.reason=incorrectness"), "task",
     f"MinimalTask does not implement {CLASS_LOGITS}, needed by a site withdrawal; "
     "sites.tasks.LabelCorruption (corrupt_labels), needed by site B's corrupt_labels"),
    (("scenario=privacy_audit",), "task",
     f"MinimalTask does not implement {CLASS_LOGITS}, needed by the privacy audit; "
     "sites.tasks.ReferenceData (reference_data), needed by the audit's reference models "
     "(scenario.audit.reference_models)"),
    (("scenario=privacy_audit", "scenario.audit.reference_models=0"), "task",
     f"MinimalTask does not implement {CLASS_LOGITS}, needed by the privacy audit"),
])
def test_a_feature_the_task_cannot_serve_is_refused_in_one_line(tmp_path, overrides, key, message):
    with pytest.raises(ConfigError) as raised:
        _prepare(tmp_path, MinimalTask, *overrides)
    assert raised.value.key == key
    assert str(raised.value) == f"{key}: {message}"


@pytest.mark.parametrize("overrides", [("scenario=site_withdrawal", "scenario.reason=incorrectness"),
                                       ("scenario=privacy_audit",), ("task=debiasing", "task.method=pbbl")])
def test_a_built_in_task_serves_the_features(tmp_path, overrides):
    plan = _prepare(tmp_path, None, *overrides).plan
    assert plan.scenario.withdrawals or plan.scenario.audit or any(phase.statistics for phase in plan.task.phases)


def test_a_phase_with_statistics_needs_the_counts(tmp_path):
    with pytest.raises(ConfigError) as raised:
        _prepare(tmp_path, CountingTask)
    assert str(raised.value) == ("task: CountingTask does not implement sites.tasks.PhaseStatistics (site_statistics, "
                                 "phase_config), needed by phase count (statistics=True)")


def test_a_capability_is_recognised_by_its_members(tmp_path):
    assert not isinstance(MinimalTask(8, 4, 4, 1, 0.01), ReplayCodec)
    assert isinstance(_prepare(tmp_path, ReplayableTask, "strategy=pga").plan.task, ReplayCodec)


@pytest.mark.parametrize("name, lacks", [("segmentation", {PhaseStatistics}), ("grading", set()),
                                         ("debiasing", set())])
def test_the_built_in_tasks_have_their_capabilities(name, lacks, small_task_config, small_grading_config,
                                                    small_debiasing_config):
    config = {"segmentation": small_task_config, "grading": small_grading_config,
              "debiasing": small_debiasing_config}[name]
    task = build_task(config)
    assert {capability for capability in CAPABILITIES if not isinstance(task, capability)} == lacks


def test_a_task_on_real_data_has_no_fresh_reference_data(small_grading_config):
    task = build_task({**small_grading_config, "manifest": "cases.csv"})
    with pytest.raises(ConfigError) as raised:
        task.reference_data(SiteSpec(id="A", name="a", index=0), seed=0)
    assert raised.value.key == "scenario.audit.reference_models"
    assert "GradingTask reads its data from task.manifest" in str(raised.value)
