"""Real data through a CSV manifest: PNG and DICOM read by MONAI, and every bad row named."""

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from sites.data.manifest import load_site_split
from sites.spec import SiteSpec
from sites.tasks import build_task

HEADER = "path,label,bias,site,split\n"


def _png(path, seed):
    pixels = np.random.default_rng(seed).integers(0, 255, size=(20, 24), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _dicom(path, seed):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = SecondaryCaptureImageStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, "DX"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 20, 24, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.ImageOrientationPatient, ds.ImagePositionPatient, ds.PixelSpacing = [1, 0, 0, 0, 1, 0], [0, 0, 0], [1, 1]
    ds.PixelData = np.random.default_rng(seed).integers(0, 4000, size=(20, 24)).astype(np.uint16).tobytes()
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
    with pytest.raises(ValueError, match="training labels are all 0; a site needs both classes"):
        task.load_site(SiteSpec(id="A", name="a", index=0), seed=0)
