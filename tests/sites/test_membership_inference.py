"""Membership-inference measurements, identifying markers, and the site's audit."""

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from sites import membership_inference
from sites.config import parse
from sites.data.markers import MARKER_INTENSITY, stamp_markers
from sites.errors import ConfigError
from sites.intervals import clopper_pearson
from sites.membership_inference import (
    FPR_GRID,
    audit_scores,
    lira_scores,
    logit_confidence,
    roc_curve,
    roc_summary,
    site_audit,
)
from sites.protocol import AuditReply, RocSummary
from sites.spec import SiteConfig
from sites.tasks import SiteData


def test_roc_curve_by_hand():
    # members 3, 2, 1 against non-members 2.5, 0.5 (higher = member)
    fpr, tpr = roc_curve(np.array([3.0, 2.0, 1.0]), np.array([2.5, 0.5]))
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 1 / 3, 2 / 3, 1, 1])


def test_tied_scores_form_one_threshold():
    fpr, tpr = roc_curve(np.array([1.0, 1.0]), np.array([1.0, 0.0]))
    np.testing.assert_allclose(fpr, [0, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 1, 1])


def test_roc_summary_by_hand():
    summary = roc_summary(np.array([3.0, 2.0, 1.0]), np.array([2.5, 0.5]))
    assert summary.auc.value == pytest.approx(4 / 6)  # of 6 (member, non-member) pairs, 4 ranked right
    assert summary.tpr["1pct"].value == pytest.approx(1 / 3)  # only the top member before any false alarm
    assert summary.advantage == pytest.approx(0.5)
    assert len(summary.roc) == len(FPR_GRID) and summary.roc[-1] == 1.0
    # DeLong's +-1.96 * sqrt(5/36) reaches past both ends; 1 of 3 members found at 1 % FPR
    assert (summary.auc.low, summary.auc.high) == (0.0, 1.0)
    assert summary.tpr["1pct"].low == pytest.approx(1 - 0.975 ** (1 / 3))
    assert (summary.tpr["1pct"].low, summary.tpr["1pct"].high) == clopper_pearson(1, 3)
    entries = summary.entries("loss")
    assert list(entries)[:4] == ["loss-auc", "loss-auc-ci-low", "loss-auc-ci-high", "loss-tpr-at-1pct-fpr"]
    assert entries["loss-tpr-at-0.1pct-fpr-ci-high"] == summary.tpr["0.1pct"].high
    assert RocSummary.from_entries(entries, "loss") == summary


def test_a_perfect_and_a_blind_attack():
    perfect = roc_summary(np.arange(10.0, 20.0), np.arange(10.0))
    assert perfect.auc.value == 1.0 and perfect.tpr["0.1pct"].value == 1.0
    rng = np.random.default_rng(0)
    blind = roc_summary(rng.normal(size=5000), rng.normal(size=5000))
    assert blind.auc.value == pytest.approx(0.5, abs=0.02) and blind.tpr["1pct"].value < 0.03


def test_reference_calibration_subtracts_the_reference_models_mean_loss():
    target = torch.tensor([1.0, 2.0])
    scores = audit_scores(target, [torch.tensor([0.5, 3.0]), torch.tensor([1.5, 1.0])])
    np.testing.assert_allclose(scores["loss"], [-1.0, -2.0])
    np.testing.assert_allclose(scores["reference"], [0.0, 0.0])  # both as hard for the reference models


def _loss_of(phi: list[float]) -> torch.Tensor:
    """The cross entropy whose logit-scaled confidence is ``phi``: -log(sigmoid(phi))."""
    return torch.nn.functional.softplus(-torch.tensor(phi, dtype=torch.float64))


def test_logit_confidence_by_hand():
    # loss log 2: p = 1/2, even odds; loss log(1 + e^-2): p = sigmoid(2)
    np.testing.assert_allclose(logit_confidence(torch.tensor([np.log(2.0), np.log1p(np.exp(-2.0))])), [0.0, 2.0],
                               atol=1e-12)
    assert np.isfinite(logit_confidence(torch.tensor([0.0]))).all()  # a perfect prediction still ranks first


# Two samples, three reference models: confidences (logit scale) 0, 1, 2 for the first (mean 1,
# variance 1) and -1, 1, 3 for the second (mean 1, variance 4); the audited model's is 3 for both.
_TOY_REFERENCES = [_loss_of([0.0, -1.0]), _loss_of([1.0, 1.0]), _loss_of([2.0, 3.0])]
_TOY_TARGET = _loss_of([3.0, 3.0])


def test_lira_with_few_reference_models_pools_the_variance():
    # pooled variance (1 + 4) / 2 = 2.5: both samples lie (3 - 1) / sqrt(2.5) above their mean
    np.testing.assert_allclose(lira_scores(_TOY_TARGET, _TOY_REFERENCES), [2 / np.sqrt(2.5)] * 2)


def test_lira_with_many_reference_models_fits_each_samples_variance(monkeypatch):
    monkeypatch.setattr(membership_inference, "PER_SAMPLE_VARIANCE_MODELS", 3)
    # the first sample's reference models agree more, so the same confidence is more surprising
    np.testing.assert_allclose(lira_scores(_TOY_TARGET, _TOY_REFERENCES), [2 / 1, 2 / 2])


def test_lira_runs_beside_the_other_attacks_only_when_asked():
    assert set(audit_scores(_TOY_TARGET, _TOY_REFERENCES)) == {"loss", "reference"}
    scores = audit_scores(_TOY_TARGET, _TOY_REFERENCES, "lira")
    assert set(scores) == {"loss", "reference", "lira"}
    np.testing.assert_allclose(scores["lira"], [2 / np.sqrt(2.5)] * 2)


class _LossTable:
    """A task whose 'models' are functions from images to per-sample losses."""

    def sample_losses(self, model, data):
        return model(data.tensors[0])


def test_lira_finds_members_whose_difficulty_hides_them_from_the_loss_attack():
    # Each patient's difficulty (its loss for a model that never saw it) spans 0.1 to 2; training
    # on a patient lowers its loss by a fifth. The loss attack mixes the two, LiRA separates them.
    train, test = torch.randn(50, 1, 2, 2), torch.randn(50, 1, 2, 2)
    rng = np.random.default_rng(0)
    difficulty = {tuple(x.flatten().tolist()): d
                  for x, d in zip(torch.cat([train, test]), rng.permutation(np.linspace(0.1, 2, 100)))}

    def model(trained_on, noise):
        def losses(images):
            return torch.tensor([difficulty[tuple(x.flatten().tolist())]
                                 * (0.8 if (trained_on == x).all(dim=(1, 2, 3)).any() else 1.0)
                                 * np.exp(noise * rng.normal()) for x in images])
        return losses

    data = SiteData(train=TensorDataset(train, torch.zeros(50)), test=TensorDataset(test, torch.zeros(50)))
    references = [model(torch.empty(0, 1, 2, 2), 0.02) for _ in range(4)]
    metrics = site_audit(_LossTable(), model(train, 0.0), data, references, None, np.random.default_rng(0), "lira")
    assert metrics["lira-auc"] == 1.0 and metrics["lira-tpr-at-1pct-fpr"] == 1.0
    assert metrics["loss-auc"] < 0.75


def test_markers_go_on_the_chosen_patients_only_and_are_unique():
    images = torch.zeros(200, 1, 4, 16, 16)
    marked = stamp_markers(images, 0.25, np.random.default_rng(0))
    assert 30 < int(marked.sum()) < 70
    tags = images[:, 0, 0, :3, :3].flatten(1)
    assert (tags[~marked] == 0).all() and ((tags[marked] == MARKER_INTENSITY).sum(dim=1) > 0).all()
    assert (images[:, :, 1:, :3, :3] == images[:, :, :1, :3, :3]).all()  # the same tag on every slice
    assert (images[:, :, :, 3:] == 0).all() and (images[:, :, :, :, 3:] == 0).all()  # only the corner
    assert len({tuple(t.tolist()) for t in tags[marked]}) > 30  # near-unique: 2^8 patterns


def test_marker_rate_is_checked():
    with pytest.raises(ConfigError) as raised:
        parse(SiteConfig, {"id": "C", "marker_rate": 1.5}, "scenario.sites.2")
    assert raised.value.key == "scenario.sites.2.marker_rate"


class _MemorisingTask:
    """Loss 0 on the training images it 'memorised', 1 elsewhere."""

    def __init__(self, memorised: torch.Tensor) -> None:
        self.memorised = memorised

    def sample_losses(self, model, data):
        images = data.tensors[0]
        return torch.tensor([0.0 if (self.memorised == x).all(dim=(1, 2, 3)).any() else 1.0 for x in images])


def test_a_site_audit_finds_a_memorised_training_set_and_reports_markers_apart():
    train, test = torch.randn(40, 1, 4, 4), torch.randn(30, 1, 4, 4)
    marked_train, marked_test = torch.arange(40) % 4 == 0, torch.arange(30) % 3 == 0
    data = SiteData(train=TensorDataset(train, torch.zeros(40)), test=TensorDataset(test, torch.zeros(30)),
                    marked_train=marked_train, marked_test=marked_test)
    metrics = site_audit(_MemorisingTask(train), None, data, [], epsilon=3.0, rng=np.random.default_rng(0))
    assert metrics["n-members"] == metrics["n-non-members"] == 30 and metrics["epsilon"] == 3.0
    assert metrics["min-resolvable-fpr"] == 1 / 30
    assert metrics["loss-auc"] == 1.0 and metrics["loss-tpr-at-1pct-fpr"] == 1.0
    assert metrics["loss-marked-auc"] == metrics["loss-unmarked-auc"] == 1.0
    assert metrics["n-marked-non-members"] == 10 and "reference-auc" not in metrics
    # the counts, the attack's figures (all, marked, unmarked), then the marker counts
    keys = list(metrics)
    assert keys[:4] == ["n-members", "n-non-members", "min-resolvable-fpr", "epsilon"]
    assert keys.index("loss-roc") < keys.index("loss-marked-auc") < keys.index("loss-unmarked-auc")
    assert keys[-2:] == ["n-marked-members", "n-marked-non-members"]
    reply = AuditReply.from_record(metrics)  # what the server reads, with named fields
    assert reply.attacks["loss"].marked.auc.value == 1.0 and reply.n_marked_non_members == 10
    assert list(dict(reply.to_record()).items()) == list(metrics.items())
