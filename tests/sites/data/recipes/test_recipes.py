"""The preparers read miniature replicas of the public datasets' folders (tests/replicas.py) and
refuse what they cannot use with one line naming the folder, file, row or column."""

import gzip
import os
import shutil

import nibabel as nib
import numpy as np
import pytest
from helpers.replicas import brats_2018, brats_2020, files_of, prostate_release, write_brats_case, write_prostate_volume

from sites.data.recipes import BratsRecipe, DataRoots, ProstateRecipe
from sites.errors import ConfigError

PROSTATE_ORDER = ["RUNMC", "BMC", "I2CVB", "UCL", "BIDMC", "HK"]
BRATS_SITES = {"TCIA": ["TCIA*"], "other": ["*"]}


def prepare_prostate(release, skip_bad=False, sites=PROSTATE_ORDER):
    return ProstateRecipe(recipe="prostate").prepare(DataRoots(release, skip_bad), sites)


def prepare_brats(release, skip_bad=False, year="auto"):
    return BratsRecipe(recipe="brats", year=year, sites=BRATS_SITES).prepare(DataRoots(release, skip_bad),
                                                                              list(BRATS_SITES))


# --- prostate --------------------------------------------------------------------------------

def test_the_prostate_release_becomes_a_segmentation_manifest_without_touching_the_folder(tmp_path):
    release = prostate_release(tmp_path)
    before = files_of(tmp_path)
    prepared = prepare_prostate(release)
    assert files_of(tmp_path) == before
    assert {site: dict(count) for site, count in prepared.counts().items()} == {
        site: {"cases": 2} for site in PROSTATE_ORDER}
    bmc = [row for row in prepared.rows if row["site"] == "BMC"]
    assert [os.path.basename(row["mask"]) for row in bmc] == ["Case00_Segmentation.nii.gz",
                                                              "Case01_Segmentation.nii.gz"]
    assert prepared.task == {"label_values": [1, 2]}  # HK's two zones are both prostate


def test_saml_s_copy_names_runmc_and_bmc_otherwise(tmp_path):
    release = prostate_release(tmp_path)
    (release / "RUNMC").rename(release / "ISBI")
    (release / "BMC").rename(release / "ISBI_1.5")
    prepared = prepare_prostate(release)
    assert {row["site"] for row in prepared.rows if "/ISBI_1.5/" in row["image"]} == {"BMC"}
    assert {row["site"] for row in prepared.rows if "/ISBI/" in row["image"]} == {"RUNMC"}


def test_a_missing_site_folder_is_refused_naming_it(tmp_path):
    release = prostate_release(tmp_path)
    shutil.rmtree(release / "UCL")
    with pytest.raises(ConfigError, match=rf"^data_root: {release}: no site folder UCL$"):
        prepare_prostate(release)


@pytest.mark.parametrize("spoil, problem", [
    ("mask", "Case02.nii.gz has no mask"),
    ("image", "Case02_segmentation.nii.gz has no image"),
    ("4d", "Case02.nii.gz: a 4D volume"),
    ("unreadable", "Case02.nii.gz: cannot read"),
    ("label", "Case02_segmentation.nii.gz: label value 0.5 not understood"),
    ("empty", "Case02_segmentation.nii.gz: no prostate"),
])
def test_a_bad_case_is_refused_in_one_line_or_skipped(tmp_path, spoil, problem):
    release = prostate_release(tmp_path, cases=3)
    image, mask = release / "UCL" / "Case02.nii.gz", release / "UCL" / "Case02_segmentation.nii.gz"
    if spoil in ("mask", "image"):
        (mask if spoil == "mask" else image).unlink()
    elif spoil == "4d":
        nib.save(nib.Nifti1Image(np.ones((16, 16, 6, 2), dtype=np.float32), np.eye(4)), image)
    elif spoil == "unreadable":
        image.write_bytes(gzip.compress(b"not a nifti file"))
    else:
        values = np.full((16, 16, 6), 0.5 if spoil == "label" else 0.0, dtype=np.float32)
        nib.save(nib.Nifti1Image(values, np.eye(4)), mask)
    with pytest.raises(ConfigError) as refused:
        prepare_prostate(release)
    message = str(refused.value)
    assert "\n" not in message and message.startswith("data_root: ") and problem in message
    assert message.endswith("(data_skip_bad=true skips such cases)")
    prepared = prepare_prostate(release, skip_bad=True)
    assert len(prepared.skipped) == 1 and problem in prepared.skipped[0]
    assert prepared.counts()["UCL"]["cases"] == 2


def test_a_site_left_with_too_few_cases_is_refused(tmp_path):
    release = prostate_release(tmp_path)
    (release / "HK" / "Case01_segmentation.nii.gz").unlink()
    with pytest.raises(ConfigError, match=r"^data_root: site HK: 1 case\(s\) after skipping 1 bad case\(s\), "
                                          r"fewer than the 2 a site needs"):
        prepare_prostate(release, skip_bad=True)


def test_nii_volumes_and_other_files_in_a_site_folder(tmp_path):
    release = prostate_release(tmp_path)
    write_prostate_volume(release / "HK", "Case07", extension=".nii")
    (release / "HK" / "readme.txt").write_text("not a case")
    prepared = prepare_prostate(release)
    assert prepared.counts()["HK"]["cases"] == 3


# --- BraTS -----------------------------------------------------------------------------------

@pytest.mark.parametrize("layout, year", [(brats_2018, 2018), (lambda root: brats_2018(root, 2019), 2019),
                                          (brats_2020, 2020)])
def test_each_brats_layout_becomes_a_grading_manifest(tmp_path, layout, year):
    release = layout(tmp_path)
    before = files_of(tmp_path)
    prepared = prepare_brats(release)
    assert files_of(tmp_path) == before
    counts = {site: dict(count) for site, count in prepared.counts().items()}
    assert counts["TCIA"] == {"HGG": 3, "LGG": 3}
    assert counts["other"] == {"HGG": 4 if year == 2020 else 3, "LGG": 3}
    assert prepared.notes[0].startswith(f"BraTS {year};")
    institutions = {row["institution"] for row in prepared.rows if row["site"] == "other"}
    assert institutions == ({"2013", "CBICA", "unknown"} if year == 2020 else {"2013", "CBICA"})


def test_a_year_the_layout_contradicts_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"^dataset.year: 2020, but .* is laid out as BraTS 2018$"):
        prepare_brats(brats_2018(tmp_path), year=2020)


def test_a_folder_of_neither_layout_is_refused(tmp_path):
    release = brats_2018(tmp_path)
    shutil.rmtree(release / "LGG")
    with pytest.raises(ConfigError, match=r"^data_root: .*: not a BraTS training folder \(no LGG/ folder"):
        prepare_brats(release)


def test_a_case_missing_a_sequence_is_refused_or_skipped(tmp_path):
    release = brats_2018(tmp_path)
    write_brats_case(release / "HGG", "Brats18_TCIA03_20_1", modalities=("t1", "t1ce", "t2"))
    case = release / "HGG" / "Brats18_TCIA03_20_1"
    with pytest.raises(ConfigError, match=rf"^data_root: {case}: no sequence flair \(expected one "):
        prepare_brats(release)
    assert prepare_brats(release, skip_bad=True).skipped == [
        f"{case}: no sequence flair (expected one <case>_flair.nii[.gz])"]


def test_a_4d_sequence_is_refused_naming_the_file(tmp_path):
    release = brats_2018(tmp_path)
    flair = release / "LGG" / "Brats18_TCIA09_4_1" / "Brats18_TCIA09_4_1_flair.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((12, 12, 8, 3), dtype=np.float32), np.eye(4)), flair)
    with pytest.raises(ConfigError, match=rf"^data_root: {flair}: a 4D volume \(12, 12, 8, 3\)"):
        prepare_brats(release)


def test_name_mapping_without_its_grade_column_is_refused(tmp_path):
    release = brats_2020(tmp_path)
    mapping = release / "name_mapping.csv"
    mapping.write_text(mapping.read_text().replace("Grade,", "Tumour,", 1))
    with pytest.raises(ConfigError, match=rf"^data_root: {mapping}: no column 'Grade'"):
        prepare_brats(release)


def test_a_grade_not_understood_is_refused_naming_the_row_and_column(tmp_path):
    release = brats_2020(tmp_path)
    mapping = release / "name_mapping.csv"
    lines = mapping.read_text().splitlines()
    lines[3] = lines[3].replace("HGG", "GBM", 1)
    mapping.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=rf"^data_root: {mapping}, row 4, column Grade: grade 'GBM' of "
                                          r"BraTS20_Training_003 not understood \(LGG or HGG\)"):
        prepare_brats(release)


def test_a_site_left_without_enough_of_a_grade_is_refused(tmp_path):
    release = brats_2018(tmp_path)
    shutil.rmtree(release / "LGG" / "Brats18_TCIA13_6_1")
    with pytest.raises(ConfigError, match=r"^data_root: site TCIA: 2 case\(s\) of LGG, fewer than the 3 a site needs"):
        prepare_brats(release)

