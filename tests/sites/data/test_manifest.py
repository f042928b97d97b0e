"""Real data through a CSV manifest: PNG and DICOM read by MONAI, colour made grey, splits
stratified by label, and every bad row named."""

import numpy as np
import pytest
from conftest import write_manifest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from sites.data.manifest import load_site_split
from sites.errors import ConfigError
from sites.spec import SiteSpec
from sites.tasks import build_task

HEADER = "path,label,bias,site,split\n"


def _png(path, seed):
    pixels = np.random.default_rng(seed).integers(0, 255, size=(20, 24), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _dicom(path, seed, samples=1):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = SecondaryCaptureImageStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, "DX"
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 20, 24, samples
    ds.PhotometricInterpretation = "MONOCHROME2" if samples == 1 else "RGB"
    if samples > 1:
        ds.PlanarConfiguration = 0  # the samples of each pixel stored together
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.ImageOrientationPatient, ds.ImagePositionPatient, ds.PixelSpacing = [1, 0, 0, 0, 1, 0], [0, 0, 0], [1, 1]
    grey = np.random.default_rng(seed).integers(0, 4000, size=(20, 24)).astype(np.uint16)
    ds.PixelData = np.repeat(grey[..., None], samples, axis=2).tobytes()
    ds.save_as(path, enforce_file_format=True)


@pytest.fixture
def manifest(tmp_path):
    rows = []
    for i in range(8):
        name = f"img{i}.dcm" if i % 4 == 3 else f"img{i}.png"
        (_dicom if name.endswith(".dcm") else _png)(tmp_path / name, i)
        rows.append(f"{name},{i % 2},{(i // 2) % 2},A,{'test' if i >= 6 else 'train'}\n")
    path = tmp_path / "manifest.csv"
    path.write_text(HEADER + "".join(rows))
    return path


def test_png_and_dicom_rows_load_as_z_scored_images(manifest):
    train, test = load_site_split(manifest, "A", 16, np.random.default_rng(0))
    assert train.images.shape == (6, 1, 16, 16) and test.images.shape == (2, 1, 16, 16)
    assert train.labels.tolist() == [0, 1, 0, 1, 0, 1] and train.bias.tolist() == [0, 0, 1, 1, 0, 0]
    assert abs(train.images.mean()) < 1e-4


def test_the_task_reads_the_manifest_for_its_site(manifest, small_debiasing_config):
    task = build_task({**small_debiasing_config, "manifest": str(manifest), "image_size": 16,
                       "arrangement": "federated"})
    data = task.load_site(SiteSpec(id="A", name="a", index=0), seed=0)
    assert len(data.train) == 6 and len(data.test) == 2
    assert {"auc", "num-examples"} <= set(task.evaluate(task.build_model(), data.test))


def _rewrite(manifest, old, new):
    manifest.write_text(manifest.read_text().replace(old, new, 1))


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        ("img1.png,1", "img1.png,2", "row 3: label must be 0 or 1 (got '2')"),
        ("img2.png,0,1", "img2.png,0,x", "row 4: bias must be 0 or 1 or empty (got 'x')"),
        ("img4.png", "gone.png", "row 6: image not found"),
        ("img5.png,1,0,A,train", "img5.png,1,0,A,valid", "row 7: split must be 'train' or 'test'"),
        ("path,label", "file,label", "missing columns ['path']"),
    ],
)
def test_bad_rows_are_named(manifest, old, new, words):
    _rewrite(manifest, old, new)
    with pytest.raises(ValueError) as raised:
        load_site_split(manifest, "A", 16, np.random.default_rng(0))
    assert words in str(raised.value) and str(manifest) in str(raised.value)


def test_a_corrupt_image_is_named(manifest):
    (manifest.parent / "img0.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="row 2: cannot read .*img0.png"):
        load_site_split(manifest, "A", 16, np.random.default_rng(0))


def test_source_biased_needs_every_group_in_the_test_split(manifest, small_debiasing_config):
    task = build_task({**small_debiasing_config, "manifest": str(manifest), "image_size": 16})
    with pytest.raises(ValueError, match="needs every \\(label, bias\\) group"):
        task.load_site(SiteSpec(id="A", name="a", index=0), seed=0)


def test_a_site_without_rows_or_with_one_class_is_refused(manifest, small_debiasing_config):
    with pytest.raises(ValueError, match="has no rows for site 'B'"):
        load_site_split(manifest, "B", 16, np.random.default_rng(0))
    text = manifest.read_text().splitlines()
    manifest.write_text("\n".join([text[0]] + [line.replace(",1,", ",0,", 1) for line in text[1:]]) + "\n")
    task = build_task({**small_debiasing_config, "manifest": str(manifest), "image_size": 16,
                       "arrangement": "federated"})
    with pytest.raises(ValueError, match="site 'A': no rows of label 1 in split train"):
        task.load_site(SiteSpec(id="A", name="a", index=0), seed=0)


def _rows_of_one_picture(tmp_path, colours):
    """One grey picture saved in each of ``colours`` (PIL modes), with the manifest listing them."""
    grey = np.random.default_rng(0).integers(0, 255, size=(20, 24), dtype=np.uint8)
    alpha = np.random.default_rng(1).integers(0, 255, size=(20, 24), dtype=np.uint8)
    channels = {"L": [grey], "LA": [grey, alpha], "RGB": [grey] * 3, "RGBA": [grey] * 3 + [alpha]}
    rows = []
    for i, mode in enumerate(colours):
        Image.fromarray(np.dstack(channels[mode]).squeeze(), mode).save(tmp_path / f"{mode}.png")
        rows.append([f"{mode}.png", i % 2, "A", "test" if i >= len(colours) - 2 else "train"])
    return write_manifest(tmp_path, rows, columns=("path", "label", "site", "split"))


def test_rgb_and_rgba_images_become_their_grey_luminance(tmp_path):
    train, test = load_site_split(_rows_of_one_picture(tmp_path, ["L", "LA", "RGB", "RGBA"]), "A", 16,
                                  np.random.default_rng(0))
    assert train.images.shape == (2, 1, 16, 16) and test.images.shape == (2, 1, 16, 16)
    for image in (train.images[1], *test.images):  # grey + alpha, RGB, RGBA: all the grey picture
        np.testing.assert_allclose(image, train.images[0], atol=1e-4)


def test_a_colour_dicom_becomes_its_luminance(tmp_path):
    _dicom(tmp_path / "grey.dcm", 0)
    _dicom(tmp_path / "rgb.dcm", 0, samples=3)  # the same grey picture in R, G and B
    rows = [["grey.dcm", 0, "A", "train"], ["rgb.dcm", 1, "A", "train"], ["grey.dcm", 0, "A", "test"],
            ["rgb.dcm", 1, "A", "test"]]
    manifest = write_manifest(tmp_path, rows, columns=("path", "label", "site", "split"))
    train, _ = load_site_split(manifest, "A", 16, np.random.default_rng(0))
    assert train.images.shape == (2, 1, 16, 16)
    np.testing.assert_allclose(train.images[1], train.images[0], atol=1e-4)


def test_without_a_split_column_each_label_gets_test_rows(tmp_path):
    for i in range(10):
        _png(tmp_path / f"img{i}.png", i)
    rows = [[f"img{i}.png", int(i >= 8), "A"] for i in range(10)]  # two positives among ten
    manifest = write_manifest(tmp_path, rows, columns=("path", "label", "site"))
    for seed in range(5):
        train, test = load_site_split(manifest, "A", 16, np.random.default_rng(seed))
        assert sorted(test.labels.tolist()) == [0, 1] and sorted(train.labels.tolist()) == [0] * 7 + [1]


def test_a_site_with_one_row_of_a_label_is_refused_before_the_run_starts(tmp_path, small_debiasing_config):
    rows = [[f"img{i}.png", int(i == 2), "A"] for i in range(3)]
    for i in range(3):
        _png(tmp_path / f"img{i}.png", i)
    manifest = write_manifest(tmp_path, rows, columns=("path", "label", "site"))
    task = build_task({**small_debiasing_config, "manifest": str(manifest)})
    with pytest.raises(ConfigError, match=r"task.manifest: site A: manifest .*, site 'A': 1 row\(s\) of label 1, "
                                          r"fewer than the 2 a site needs \(one for each split: train, test\)"):
        task.check_sites([SiteSpec(id="A", name="a", index=0)])
