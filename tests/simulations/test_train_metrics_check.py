"""``privacy.train_metrics`` a run cannot honour is refused before anything starts."""

import pytest
from flwr.serverapp.strategy import FedAvg, QFedAvg

from server.capability_checks import check_train_metrics
from sites.config import parse
from sites.errors import ConfigError
from sites.privacy import Privacy

DP = {"method": "dp", "noise_multiplier": 1.0, "max_grad_norm": 1.0, "delta": 1e-5}


def _dp(mode: str):
    return parse(Privacy, {**DP, "train_metrics": mode}, "privacy")


def test_withholding_the_loss_from_a_strategy_that_reads_it_is_refused(small_task):
    with pytest.raises(ConfigError, match="withhold: QFedAvg reads each site's 'train_loss'; use noise or release") \
            as raised:
        check_train_metrics(QFedAvg(client_learning_rate=0.1), small_task, _dp("withhold"))
    assert raised.value.key == "privacy.train_metrics"
    for mode in ("noise", "release"):
        check_train_metrics(QFedAvg(client_learning_rate=0.1), small_task, _dp(mode))
    check_train_metrics(FedAvg(), small_task, _dp("withhold"))
    check_train_metrics(QFedAvg(client_learning_rate=0.1), small_task, None)  # without DP nothing is withheld


def test_a_noised_loss_needs_per_sample_losses():
    with pytest.raises(ConfigError, match="privacy.train_metrics=noise") as raised:
        check_train_metrics(FedAvg(), object(), _dp("noise"))
    assert raised.value.key == "privacy.train_metrics"
