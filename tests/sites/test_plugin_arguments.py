"""The arguments of a class built from a ``_target_`` node (sites/config.py, ``instantiate``): a
class with an argument model has them checked, defaults filled in, before its constructor runs;
a user's class without one is built from the node's values as they are."""

from typing import ClassVar

import pytest
from torch import nn

from sites.config import argument_model
from sites.errors import ConfigError
from sites.tasks import Task, build_task
from sites.tasks.base import TaskArguments
from sites.tasks.grading import GradingArguments, GradingTask

BASE = {"n_train": 8, "n_test": 4, "batch_size": 4, "local_steps": 1, "lr": 0.01}


class PlainTask(Task):
    """A user's task that takes the base's arguments, declaring the base's model for a
    constructor of its own that records what it was called with."""

    primary_metric = "accuracy"
    arguments = TaskArguments
    built: ClassVar[list[dict]] = []

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        PlainTask.built.append(kwargs)

    def build_model(self) -> nn.Module:
        return nn.Linear(1, 1)

    def load_site(self, site, seed):
        raise NotImplementedError

    def batch_loss(self, model, batch, config):
        raise NotImplementedError

    def evaluate(self, model, data):
        raise NotImplementedError


class SubclassedTask(PlainTask):
    """Inherits the constructor and so its argument model."""


class WidthTask(PlainTask):
    """A user's task with an argument of its own and no argument model."""

    def __init__(self, width, **kwargs) -> None:
        super().__init__(**kwargs)
        self.width = width


def test_the_argument_model_is_that_of_the_class_whose_constructor_runs():
    assert argument_model(GradingTask) is GradingArguments
    assert argument_model(SubclassedTask) is TaskArguments
    assert argument_model(WidthTask) is None


def test_a_users_class_without_an_argument_model_is_built_from_the_values_as_they_are():
    task = build_task({"_target_": f"{__name__}.WidthTask", "width": "any", **BASE})
    assert isinstance(task, WidthTask) and task.width == "any" and task.n_train == 8


@pytest.mark.parametrize("changes, key, reason", [
    ({"n_train": 0}, "task.n_train", "must be greater than 0 (got 0)"),
    ({"lr": "0.01"}, "task.lr", "must be a valid number (got '0.01')"),
    ({"width": 3}, "task", "unknown keys ['width'] (known: ['batch_size', 'local_steps', 'lr', 'n_test', 'n_train'])"),
])
def test_a_bad_argument_is_refused_by_its_key_before_the_constructor_runs(changes, key, reason):
    PlainTask.built.clear()
    with pytest.raises(ConfigError) as raised:
        build_task({"_target_": f"{__name__}.SubclassedTask", **BASE, **changes})
    assert (raised.value.key, raised.value.problem) == (key, reason)
    assert PlainTask.built == []


def test_the_constructor_takes_the_checked_values():
    task = build_task({"_target_": f"{__name__}.SubclassedTask", **BASE, "lr": 1})
    assert type(task.lr) is float and PlainTask.built[-1]["lr"] == 1.0
