"""The segmentation task: shapes, local training, Dice, the FedProx term, config errors."""

import pytest
import torch
from conftest import task_config_error

from sites.protocol import TrainConfig
from sites.spec import ScannerSignature, SiteSpec
from sites.tasks import build_task

SITE = SiteSpec(id="A", name="a", index=0, scanner=ScannerSignature(contrast=0.3, noise=0.03))


def test_shapes_and_dtypes(small_task):
    data = small_task.load_site(SITE, seed=0)
    images, masks = data.train.tensors
    assert images.shape == (16, 1, 32, 32) and images.dtype == torch.float32
    assert masks.shape == (16, 1, 32, 32) and masks.dtype == torch.int64
    assert len(data.test) == 8
    assert small_task.build_model()(images[:2]).shape == (2, 2, 32, 32)
    # per-image z-scoring
    assert images.mean(dim=(1, 2, 3)).abs().max() < 1e-4


def test_the_validation_split_is_drawn_apart_from_training_and_test(small_task):
    data = small_task.load_site(SITE, seed=0)
    validation = data.validation.tensors[0]
    assert validation.shape == (6, 1, 32, 32)
    for other in (data.train.tensors[0], data.test.tensors[0]):
        assert not any(torch.equal(image, seen) for image in validation for seen in other)


def test_site_counts_override_task_defaults(small_task):
    data = small_task.load_site(SiteSpec(id="A", name="a", index=0, n_train=5, n_test=3), seed=0)
    assert (len(data.train), len(data.test)) == (5, 3)


def test_local_training_learns_and_is_reproducible(small_task_config):
    task = build_task({**small_task_config, "local_steps": 60, "lr": 0.005})
    data = task.load_site(SITE, seed=0)
    torch.manual_seed(0)
    model = task.build_model()
    before = task.evaluate(model, data.train)["dice"]
    first = task.train(model, data.train, seed=3, config=TrainConfig())
    assert first["num-examples"] == 16
    assert task.evaluate(model, data.train)["dice"] > before + 0.2
    torch.manual_seed(0)
    again = task.build_model()
    assert task.train(again, data.train, seed=3, config=TrainConfig())["train_loss"] == first["train_loss"]


def test_dice_is_one_for_a_perfect_prediction(small_task):
    data = small_task.load_site(SITE, seed=0)

    class Oracle(torch.nn.Module):
        def forward(self, images):
            masks = data.test.tensors[1][: len(images), 0].float()
            return torch.stack([1 - masks, masks], dim=1)

    assert small_task.evaluate(Oracle(), data.test)["dice"] == pytest.approx(1.0)


def test_proximal_term_keeps_weights_near_the_global_model(small_task):
    data = small_task.load_site(SITE, seed=0)

    def drift(mu):
        torch.manual_seed(0)
        model = small_task.build_model()
        start = [p.detach().clone() for p in model.parameters()]
        small_task.train(model, data.train, seed=1, config=TrainConfig(proximal_mu=mu))
        return sum((p - s).pow(2).sum().item() for p, s in zip(model.parameters(), start))

    assert drift(100.0) < drift(0.0)


@pytest.mark.parametrize(
    ("changes", "key", "reason"),
    [({"local_steps": 0}, "task.local_steps", "must be greater than 0 (got 0)"),
     ({"lr": 0}, "task.lr", "must be greater than 0 (got 0)"),
     ({"lr": "fast"}, "task.lr", "must be a valid number (got 'fast')"),
     ({"n_validation": 0}, "task.n_validation", "must be greater than 0 (got 0)"),
     ({"strides": [2]}, "task.strides", "needs len(channels) - 1 = 2 entries (got 1)"),
     ({"image_size": 30}, "task.image_size", "must be divisible by the product of strides [2, 2] (got 30)"),
     ({"_target_": "sites.spec.SiteSpec"}, "task._target_", "sites.spec.SiteSpec is not a sites.tasks.Task subclass"),
     ({"_target_": "nowhere.Task"}, "task._target_",
      "cannot import 'nowhere.Task': ModuleNotFoundError: No module named 'nowhere'")],
)
def test_bad_task_config_names_the_key(small_task_config, changes, key, reason):
    assert task_config_error(small_task_config, changes) == (key, reason)


def test_an_unknown_task_argument_is_refused_naming_it(small_task_config):
    key, reason = task_config_error(small_task_config, {"depth": 3})
    assert key == "task" and reason.startswith("unknown keys ['depth'] (known: ['batch_size', 'channels',")
