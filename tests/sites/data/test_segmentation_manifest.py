"""Segmentation from disk: NIfTI volumes cut into slices, 2D image/mask files, and every bad case named."""

import os

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import load_config, task_config_error, write_manifest, write_segmentation_case
from monai.transforms import LoadImage
from nibabel.testing import data_path
from PIL import Image

from sites.data.segmentation_manifest import Slicing, load_site_slices
from sites.errors import ConfigError
from sites.protocol import TrainConfig
from sites.spec import SiteSpec
from sites.tasks import build_task

COLUMNS = ("image", "mask", "site", "split")
SITE = SiteSpec(id="A", name="a", index=0)
# Real scans that nibabel ships for its own tests: a 3D anatomical MRI and a 4D series.
ANATOMICAL, FOUR_D = os.path.join(data_path, "anatomical.nii"), os.path.join(data_path, "example4d.nii.gz")


def _small_config():
    config = load_config("task", "segmentation")
    config.update(batch_size=4, local_steps=2, image_size=16, channels=[4, 8], strides=[2])
    return config


def _nifti(path, array, affine=np.eye(4)):
    nib.save(nib.Nifti1Image(np.asarray(array), affine), path)
    return path.name


def _cohort(root, n=3, **changes):
    """``n`` cases of site A, the last one the test split; ``changes`` by case name."""
    rows = [[*write_segmentation_case(root, f"case{i}", **changes.get(f"case{i}", {})), "A",
             "test" if i == n - 1 else "train"] for i in range(n)]
    return write_manifest(root, rows, columns=COLUMNS)


def _load(manifest, **slicing):
    return load_site_slices(manifest, "A", Slicing(**{"image_size": 16, **slicing}), np.random.default_rng(0))


def test_volumes_become_z_scored_slices_with_foreground(tmp_path):
    splits = _load(_cohort(tmp_path), empty_share=0.0)
    images, masks = splits["train"]
    assert images.shape == (8, 1, 16, 16) and images.dtype == np.float32  # 2 cases x 4 organ slices
    assert masks.shape == (8, 1, 16, 16) and masks.dtype == np.int64
    assert set(np.unique(masks)) == {0, 1} and masks.any(axis=(1, 2, 3)).all()
    np.testing.assert_allclose(images.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(images.std(axis=(1, 2, 3)), 1, atol=1e-2)
    assert splits["test"][0].shape[0] == 4


@pytest.mark.parametrize(("share", "per_case"), [(0.0, 4), (0.5, 6), (1.0, 8)])
def test_a_share_of_the_empty_slices_is_kept(tmp_path, share, per_case):
    images, masks = _load(_cohort(tmp_path), empty_share=share)["train"]
    assert len(images) == 2 * per_case
    assert (~masks.any(axis=(1, 2, 3))).sum() == 2 * (per_case - 4)


def test_the_slice_axis_is_chosen_in_ras_whatever_the_storage_order(tmp_path):
    # Stored as (S, R, A): array axis 0 runs superior, so after reorienting it is axis 2, axial.
    to_ras = np.array([[0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=float)
    rows = []
    for i in range(2):
        mask = np.zeros((8, 12, 10), dtype=np.int16)
        mask[1:4, 3:9, 2:7] = 1  # 3 axial slices, 6 sagittal, 5 coronal
        image = np.random.default_rng(i).normal(size=mask.shape) + mask
        rows.append([_nifti(tmp_path / f"i{i}.nii", image, to_ras), _nifti(tmp_path / f"m{i}.nii", mask, to_ras),
                     "A", "test" if i else "train"])
    manifest = write_manifest(tmp_path, rows, columns=COLUMNS)
    counts = {axis: len(_load(manifest, axis=axis, empty_share=0.0)["train"][0]) for axis in (0, 1, 2)}
    assert counts == {0: 6, 1: 5, 2: 3}


def test_a_real_mri_from_nibabel_is_sliced_as_nibabel_s_canonical_orientation_says(tmp_path):
    """nibabel ships no label volume: the mask is the scan thresholded at its 80th percentile."""
    scan = nib.load(ANATOMICAL)
    mask = (scan.get_fdata() > np.percentile(scan.get_fdata(), 80)).astype(np.uint8)
    mask_name = _nifti(tmp_path / "anatomical_seg.nii.gz", mask, scan.affine)
    manifest = write_manifest(tmp_path, [[ANATOMICAL, mask_name, "A", split] for split in ("train", "test")],
                              columns=COLUMNS)
    canonical = nib.as_closest_canonical(nib.Nifti1Image(mask, scan.affine)).get_fdata()
    filled, empty = [int(n) for n in np.bincount(canonical.any(axis=(0, 1)), minlength=2)[::-1]]
    images, masks = _load(manifest, empty_share=1.0)["train"]
    assert images.shape == (filled + empty, 1, 16, 16)
    assert len(_load(manifest, empty_share=0.0)["train"][0]) == filled
    task = build_task({**_small_config(), "manifest": str(manifest)})
    data = task.load_site(SITE, seed=0)
    model = task.build_model()
    assert np.isfinite(task.train(model, data.train, seed=0, config=TrainConfig())["train_loss"])
    assert 0 <= task.evaluate(model, data.test)["dice"] <= 1


def _png(path, pixels):
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(path)
    return path.name


def test_2d_images_are_one_slice_each_and_colour_becomes_luminance(tmp_path):
    rng = np.random.default_rng(0)
    mask = np.zeros((20, 24), dtype=np.uint8)
    mask[5:12, 6:15] = 255  # a PNG mask as drawing tools save it: 0 and 255
    grey = rng.integers(0, 255, size=(20, 24))
    rows = [[_png(tmp_path / "grey.png", grey), _png(tmp_path / "mask.png", mask), "A", "train"],
            [_png(tmp_path / "rgb.png", np.repeat(grey[..., None], 3, axis=2)), "mask.png", "A", "train"],
            [_png(tmp_path / "rgba.png", np.dstack([grey] * 3 + [rng.integers(0, 255, size=(20, 24))])), "mask.png",
             "A", "test"]]
    splits = _load(write_manifest(tmp_path, rows, columns=COLUMNS))
    images, masks = splits["train"]
    assert images.shape == (2, 1, 16, 16) and set(np.unique(masks)) == {0, 1}
    np.testing.assert_allclose(images[1], images[0], atol=1e-4)  # grey as RGB: luminance = the grey
    np.testing.assert_allclose(splits["test"][0][0], images[0], atol=1e-4)  # RGBA: the alpha dropped


def test_a_colour_mask_is_named(tmp_path):
    grey = np.random.default_rng(0).integers(0, 255, size=(20, 24))
    rows = [[_png(tmp_path / "grey.png", grey), _png(tmp_path / "mask.png", np.dstack([grey > 100] * 3) * 255), "A",
             split] for split in ("train", "test")]
    with pytest.raises(ValueError, match=r"row 2: .*mask.png has 3 channels; a mask needs one"):
        _load(write_manifest(tmp_path, rows, columns=COLUMNS))


def test_without_a_split_column_whole_cases_go_to_one_split(tmp_path):
    # Cases with 1, 2, 4 and 8 organ slices: any sum of slices names the cases it came from.
    rows = [[*write_segmentation_case(tmp_path, f"case{i}", shape=(12, 10, 10), organ=range(2 ** i)), "A"]
            for i in range(4)]
    manifest = write_manifest(tmp_path, rows, columns=COLUMNS[:3])
    splits = _load(manifest, empty_share=0.0)
    test = len(splits["test"][0])
    assert test in (1, 2, 4, 8) and len(splits["train"][0]) == 15 - test
    again = _load(manifest, empty_share=0.0)
    np.testing.assert_array_equal(again["test"][0], splits["test"][0])


def test_label_values_choose_the_foreground_of_a_mask_with_several_labels(tmp_path):
    # case0: label 1 in slices 2 and 4, label 2 in slices 3 and 5; the others label 2 only
    manifest = _cohort(tmp_path, case0={"labels": (1, 2)}, case1={"labels": (2,)}, case2={"labels": (2,)})
    with pytest.raises(ValueError, match=r"row 2: .*case0_seg.nii.gz holds 2 non-zero labels \[1, 2\]; "
                                         r"set task.label_values"):
        _load(manifest)
    images, masks = _load(manifest, label_values=(2,), empty_share=0.0)["train"]
    assert len(images) == 2 + 4  # case0: the two label-2 slices; case1: its four


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"case1": {"labels": (0,)}}, "row 3: {root}/case1_seg.nii.gz has no foreground"),
        ({"case0": {"labels": (3,)}}, "row 2: {root}/case0_seg.nii.gz has no foreground (no voxel in "
                                      "task.label_values [1, 2])"),
    ],
)
def test_a_mask_without_foreground_is_named(tmp_path, changes, words):
    with pytest.raises(ValueError) as raised:
        _load(_cohort(tmp_path, **changes), label_values=(1, 2) if "label_values" in words else None)
    assert words.format(root=tmp_path) in str(raised.value)


def test_a_mask_of_another_shape_is_named(tmp_path):
    manifest = _cohort(tmp_path)
    _nifti(tmp_path / "case1_seg.nii.gz", np.ones((12, 10, 7), dtype=np.int16))
    with pytest.raises(ValueError, match=r"manifest .*, row 3: image \(12, 10, 8\) and mask \(12, 10, 7\) differ"):
        _load(manifest)


def test_a_4d_volume_is_named(tmp_path):
    mask = _nifti(tmp_path / "mask.nii.gz", np.ones(nib.load(FOUR_D).shape[:3], dtype=np.int16))
    manifest = _cohort(tmp_path)
    manifest.write_text(manifest.read_text().replace("case0.nii.gz,case0_seg.nii.gz", f"{FOUR_D},{mask}"))
    with pytest.raises(ValueError, match=r"row 2: .*example4d.nii.gz is a 4D volume \(2 volumes of "
                                         r"\(128, 96, 24\)\); a case needs one 3D volume"):
        _load(manifest)


def test_an_unreadable_volume_is_named(tmp_path):
    manifest = _cohort(tmp_path)
    volume = tmp_path / "case2.nii.gz"
    volume.write_bytes(volume.read_bytes()[:60])
    with pytest.raises(ValueError, match=f"row 4: cannot read {tmp_path}/case2.nii.gz"):
        _load(manifest)


def test_a_validation_split_exists_where_the_manifest_names_its_rows(tmp_path):
    (tmp_path / "unnamed").mkdir()
    (tmp_path / "named").mkdir()
    assert "validation" not in _load(_cohort(tmp_path / "unnamed"))
    manifest = _cohort(tmp_path / "named", n=4)
    manifest.write_text(manifest.read_text().replace("A,train", "A,validation", 1))
    splits = _load(manifest, empty_share=0.0)
    assert {name: images.shape[0] for name, (images, _) in splits.items()} == {"train": 8, "validation": 4, "test": 4}


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        ("case1_seg.nii.gz", "gone.nii.gz", "row 3: mask not found: {root}/gone.nii.gz"),
        ("case0.nii.gz", "gone.nii.gz", "row 2: image not found: {root}/gone.nii.gz"),
        ("A,test", "A,holdout", "row 4: split must be one of ['train', 'validation', 'test'] (got 'holdout')"),
        ("A,test", "A,train", "site 'A': no rows in split test; each of the splits ['train', 'test'] needs"),
        ("A,test", "A,", "site 'A': row 4 names no split while other rows of the site do"),
    ],
)
def test_a_bad_row_is_named_before_any_image_is_read(tmp_path, old, new, words):
    manifest = _cohort(tmp_path)
    manifest.write_text(manifest.read_text().replace(old, new, 1))
    task = build_task({**_small_config(), "manifest": str(manifest)})
    with pytest.raises(ConfigError) as raised:
        task.check_sites([SITE])
    assert f"task.manifest: site A: manifest {manifest}" in str(raised.value)
    assert words.format(root=tmp_path) in str(raised.value)


def test_a_site_needs_a_case_for_each_split(tmp_path):
    manifest = write_manifest(tmp_path, [[*write_segmentation_case(tmp_path, "case0"), "A"]], columns=COLUMNS[:3])
    task = build_task({**_small_config(), "manifest": str(manifest)})
    with pytest.raises(ConfigError, match=r"site 'A': 1 row\(s\), fewer than the 2 a site needs \(one for each "
                                          r"split: train, test\)"):
        task.check_sites([SITE])
    with pytest.raises(ConfigError, match="site B: manifest .* has no rows for site 'B'"):
        task.check_sites([SiteSpec(id="B", name="b", index=1)])


@pytest.mark.parametrize(("axis", "spacing", "shape"), [(2, (1.0, 1.0), (23, 10, 8)), (0, (0.5, 1.0), (12, 19, 8))])
def test_volumes_are_resampled_in_plane_to_the_pixel_spacing(tmp_path, axis, spacing, shape):
    """A volume of 2 x 1 x 1 mm voxels, (12, 10, 8): in plane (the two axes other than the
    slicing axis) it takes the spacing asked for, along the slicing axis it keeps its own."""
    image, mask = write_segmentation_case(tmp_path, "case0", affine=np.diag([2.0, 1.0, 1.0, 1.0]))
    load = LoadImage(image_only=True, ensure_channel_first=True)
    slicing = Slicing(image_size=16, axis=axis, pixel_spacing=spacing)
    image, mask = slicing.resample(load(str(tmp_path / image)), load(str(tmp_path / mask)))
    assert tuple(image.shape[1:]) == tuple(mask.shape[1:]) == shape
    assert set(np.unique(np.asarray(mask))) == {0, 1}  # nearest neighbour: still a mask
    assert Slicing(image_size=16).resample(image, mask) == (image, mask)


@pytest.mark.parametrize(("changes", "key", "reason"), [
    ({"slice_axis": 3}, "task.slice_axis", "must be less than or equal to 2 (got 3)"),
    ({"slice_axis": True}, "task.slice_axis", "must be a valid integer (got True)"),
    ({"empty_slices": 1.5}, "task.empty_slices", "must be less than or equal to 1 (got 1.5)"),
    ({"label_values": [0, 1]}, "task.label_values", "must be non-zero: 0 is the background (got [0, 1])"),
    ({"label_values": []}, "task.label_values", "must hold at least 1 item(s) (got [])"),
    ({"pixel_spacing": [1.0]}, "task.pixel_spacing", "must hold at least 2 item(s) (got [1.0])"),
    ({"pixel_spacing": [1.0, 0]}, "task.pixel_spacing.1", "must be greater than 0 (got 0)"),
])
def test_bad_slicing_options_name_their_key(changes, key, reason):
    assert task_config_error(_small_config(), changes) == (key, reason)


def test_the_task_reads_the_same_slices_for_the_same_seed_and_cannot_make_reference_data(tmp_path):
    task = build_task({**_small_config(), "manifest": str(_cohort(tmp_path))})
    first, again = task.load_site(SITE, 0), task.load_site(SITE, 0)
    assert all(torch.equal(a, b) for a, b in zip(first.train.tensors, again.train.tensors))
    with pytest.raises(ConfigError, match="scenario.audit.reference_models"):
        task.reference_data(SITE, seed=0)
