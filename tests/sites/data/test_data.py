"""Synthetic prostate-like data: deterministic, shifted per site, its scanner checked when the config is read."""

import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from sites.config import parse
from sites.data.prostate import ORGAN, sample_anatomy
from sites.data.scanner import acquire
from sites.errors import ConfigError
from sites.spec import ScannerSignature, SiteSpec
from sites.tasks import build_task

CONFIGS = Path(__file__).parents[3] / "configs"


def test_same_seed_same_images_different_seed_different_images():
    a = sample_anatomy(4, 32, np.random.default_rng(7))
    b = sample_anatomy(4, 32, np.random.default_rng(7))
    c = sample_anatomy(4, 32, np.random.default_rng(8))
    assert np.array_equal(a.tissue, b.tissue) and np.array_equal(a.texture, b.texture)
    assert not np.array_equal(a.tissue, c.tissue)
    scanner = ScannerSignature(noise=0.1, blur=0.5, bias_field=0.3)
    assert np.array_equal(acquire(a.render(0.3), scanner, np.random.default_rng(1)),
                          acquire(a.render(0.3), scanner, np.random.default_rng(1)))


def test_every_slice_has_an_organ_of_plausible_size():
    anatomy = sample_anatomy(50, 64, np.random.default_rng(0))
    fraction = anatomy.organ_mask.reshape(50, -1).mean(axis=1)
    assert fraction.min() > 0.01 and fraction.max() < 0.12


def test_scanner_contrast_sets_the_organ_against_its_tissue():
    anatomy = sample_anatomy(8, 32, np.random.default_rng(0))
    organ = anatomy.tissue == ORGAN
    for contrast in (-0.3, 0.3):
        images = acquire(anatomy.render(contrast), ScannerSignature(noise=0.0), np.random.default_rng(0))[:, 0]
        tissue = (anatomy.tissue == 1)
        assert np.sign(images[organ].mean() - images[tissue].mean()) == np.sign(contrast)


@pytest.mark.parametrize("field", ["noise", "blur", "bias_field"])
@pytest.mark.parametrize(("value", "words"), [(-1.0, "must be greater than or equal to 0 (got -1.0)"),
                                              (float("inf"), "must be a finite number (got inf)")])
def test_out_of_range_signature_names_the_field(field, value, words):
    with pytest.raises(ConfigError, match=rf"^scenario\.sites\.0\.scanner\.{field}: {re.escape(words)}$"):
        parse(ScannerSignature, {field: value}, "scenario.sites.0.scanner")


def test_field_of_view_frames_the_same_bodies():
    """Twice the field of view: the same draws, the organ a quarter of the pixels."""
    wide, reference = (sample_anatomy(16, 64, np.random.default_rng(3), field_of_view=fov) for fov in (2.0, 1.0))
    ratio = (wide.tissue == ORGAN).sum() / (reference.tissue == ORGAN).sum()
    assert ratio == pytest.approx(0.25, rel=0.05)


@pytest.mark.parametrize("value", [0.0, -1.0])
def test_a_field_of_view_must_be_positive(value):
    with pytest.raises(ConfigError, match=r"^scenario\.sites\.0\.scanner\.field_of_view: must be greater than 0"):
        parse(ScannerSignature, {"field_of_view": value}, "scenario.sites.0.scanner")


@pytest.mark.parametrize("task", ["grading", "debiasing"])
def test_tasks_without_anatomy_refuse_a_field_of_view(task):
    built = build_task(yaml.safe_load((CONFIGS / "task" / f"{task}.yaml").read_text()))
    sites = [SiteSpec(id="A", index=0), SiteSpec(id="B", index=1, scanner={"field_of_view": 1.2})]
    with pytest.raises(ConfigError, match=rf"^scenario\.sites\.1\.scanner\.field_of_view: site B: the {task} task"):
        built.check_sites(sites)
    built.check_sites(sites[:1])
