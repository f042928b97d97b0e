"""A user's own site unlearning objective, defined outside the packages, to test the plug-in path."""

import torch
import torch.nn.functional as F
from torch import nn

from sites.unlearning import SiteObjective


class FlattenPredictions(SiteObjective):
    """Forget: pull the model's predictions on the forget set towards the uniform distribution
    (the cross entropy to it); retain: the mean NLL on the remaining sites' data."""

    retains = True

    def forget(self, model: nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
        return -F.log_softmax(self.task.logits(model, batch), dim=1).mean()

    def retain(self, model: nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
        return self.task.per_sample_loss(model, batch).mean()
