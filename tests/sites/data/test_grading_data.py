"""Synthetic BraTS-like volumes and the BraTS-style manifest loader."""

import numpy as np
import pytest
from conftest import write_brats_case, write_manifest

from sites import seeding
from sites.data.brain import MODALITIES, SEQUENCE_ARTIFACTS, render_brain_volumes, sequence_scanner
from sites.data.brats import load_site_cases
from sites.errors import ConfigError
from sites.spec import ScannerSignature, SiteSpec
from sites.tasks import build_task


def test_volumes_have_four_sequences_and_are_reproducible():
    grades = np.array([0, 1, 1, 0])
    first = render_brain_volumes(grades, 6, 16, 0.3, np.random.default_rng(5))
    second = render_brain_volumes(grades, 6, 16, 0.3, np.random.default_rng(5))
    assert first.shape == (4, 4, 6, 16, 16) and first.dtype == np.float32
    np.testing.assert_array_equal(first, second)


def test_grade_shows_as_enhancement_in_t1ce_and_not_in_t1():
    grades = np.arange(400) % 2
    volumes = render_brain_volumes(grades, 8, 16, 0.3, np.random.default_rng(0))
    brightest = volumes.max(axis=(2, 3, 4))  # (N, 4): brightest voxel per sequence
    t1, t1ce = MODALITIES.index("t1"), MODALITIES.index("t1ce")
    enhancing = brightest[:, t1ce] > 0.75  # above white matter: an enhancing rim is present
    assert enhancing[grades == 1].mean() > 0.7
    assert enhancing[grades == 0].mean() < 0.3
    assert np.allclose(brightest[:, t1], brightest[0, t1])  # T1 never enhances


def test_a_lower_site_contrast_shrinks_every_lesion_difference():
    grades = np.array([1, 1, 0])
    strong = render_brain_volumes(grades, 6, 16, 0.3, np.random.default_rng(1))
    weak = render_brain_volumes(grades, 6, 16, 0.15, np.random.default_rng(1))
    healthy = render_brain_volumes(grades, 6, 16, 0.0, np.random.default_rng(1))
    np.testing.assert_allclose(weak - healthy, 0.5 * (strong - healthy), atol=1e-6)


def test_each_sequence_adds_its_own_artifacts_to_a_site_look_fixed_by_the_site():
    scanner = ScannerSignature(gain=1.0, offset=0.0, contrast=0.3, noise=0.05, blur=0.5, bias_field=0.1)
    t2 = sequence_scanner(scanner, "t2", seeding.numpy_rng(3, seeding.Stream.SEQUENCE_SIGNATURE, 2))
    assert t2.noise == pytest.approx(0.05 + SEQUENCE_ARTIFACTS["t2"]["noise"]) and t2.blur == 0.5
    flair = sequence_scanner(scanner, "flair", seeding.numpy_rng(3, seeding.Stream.SEQUENCE_SIGNATURE, 3))
    assert flair.blur == pytest.approx(0.5 + SEQUENCE_ARTIFACTS["flair"]["blur"])
    again = sequence_scanner(scanner, "t2", seeding.numpy_rng(3, seeding.Stream.SEQUENCE_SIGNATURE, 2))
    assert again == t2 and t2.gain != 1.0


# --- the manifest loader ----------------------------------------------------------------------

def _cohort(root, **case_changes):
    rows = []
    for i, split in enumerate(["train"] * 4 + ["validation"] * 2 + ["test"] * 2):
        case = f"case{i}"
        write_brats_case(root, case, **case_changes.get(case, {}))
        rows.append([case, "HGG" if i % 2 else "lgg", "A", split])
    return rows


def test_the_loader_reads_four_nifti_files_per_case_into_slice_first_volumes(tmp_path):
    manifest = write_manifest(tmp_path, _cohort(tmp_path))
    splits = load_site_cases(manifest, "A", depth=4, size=8, rng=np.random.default_rng(0))
    volumes, grades = splits["train"]
    assert volumes.shape == (4, 4, 4, 8, 8) and volumes.dtype == np.float32
    assert grades.tolist() == [0, 1, 0, 1]
    assert splits["validation"][0].shape[0] == 2 and splits["test"][0].shape[0] == 2
    assert abs(volumes[0, 0].mean()) < 1e-4  # z-scored per sequence


def test_the_slice_axis_is_the_files_last_axis(tmp_path):
    ramp = np.broadcast_to(np.arange(6, dtype=np.float32), (8, 8, 6)).copy()  # varies along Z only
    rows = _cohort(tmp_path, case0={"shape": (8, 8, 6), "override": dict.fromkeys(MODALITIES, ramp)})
    volumes, _ = load_site_cases(write_manifest(tmp_path, rows), "A", 6, 8, np.random.default_rng(0))["train"]
    profile = volumes[0, 0].mean(axis=(1, 2))
    assert np.all(np.diff(profile) > 0)
    assert np.allclose(volumes[0, 0].std(axis=(1, 2)), 0, atol=1e-5)


def test_without_a_split_column_each_split_gets_cases_of_each_grade(tmp_path):
    rows = [row[:3] for row in _cohort(tmp_path)] + [[f"case{i}", "HGG", "A"] for i in range(8, 10)]
    for i in range(8, 10):
        write_brats_case(tmp_path, f"case{i}")
    manifest = write_manifest(tmp_path, rows, columns=("case", "grade", "site"))
    splits = load_site_cases(manifest, "A", 4, 8, np.random.default_rng(0))
    # 4 LGG and 6 HGG: within each grade a fifth (at least one) test, a tenth (at least one) validation
    assert {name: sorted(grades.tolist()) for name, (_, grades) in splits.items()} == {
        "train": [0, 0, 1, 1, 1, 1], "validation": [0, 1], "test": [0, 1]}


def test_a_small_site_of_eight_cases_gets_both_grades_in_every_split(tmp_path, small_grading_config):
    manifest = write_manifest(tmp_path, [row[:3] for row in _cohort(tmp_path)], columns=("case", "grade", "site"))
    task = build_task({**small_grading_config, "manifest": str(manifest)})
    for seed in range(5):
        data = task.load_site(SiteSpec(id="A", name="a", index=0), seed)
        for split in (data.train, data.validation, data.test):
            assert set(split.tensors[1].tolist()) == {0, 1}


def test_a_site_with_too_few_cases_of_a_grade_is_refused_before_the_run_starts(tmp_path, small_grading_config):
    rows = [row[:3] for row in _cohort(tmp_path) if row[0] not in ("case0", "case2")]  # 2 LGG, 4 HGG
    manifest = write_manifest(tmp_path, rows, columns=("case", "grade", "site"))
    task = build_task({**small_grading_config, "manifest": str(manifest)})
    with pytest.raises(ConfigError, match=r"task.manifest: site A: manifest .*, site 'A': 2 row\(s\) of LGG, fewer "
                                          r"than the 3 a site needs \(one for each split: train, test, validation\)"):
        task.check_sites([SiteSpec(id="A", name="a", index=0)])


def test_a_split_without_a_grade_is_refused(tmp_path):
    rows = _cohort(tmp_path)
    rows[5][3] = "train"  # the only HGG case of the validation split
    with pytest.raises(ValueError, match="site 'A': no rows of HGG in split validation"):
        load_site_cases(write_manifest(tmp_path, rows), "A", 4, 8, np.random.default_rng(0))


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"case2": {"skip": ("t1ce",)}}, "case case2: missing modality t1ce"),
        ({"case3": {"override": {"t2": np.random.default_rng(0).normal(size=(12, 10, 9))}}},
         "case case3: modalities differ in shape"),
        ({"case1": {"override": {"flair": np.full((12, 10, 8), np.nan)}}}, "case case1: "),
        ({"case5": {"override": {"t1": np.ones((12, 10, 8))}}}, "case5_t1.nii.gz is constant or not finite"),
    ],
)
def test_a_bad_case_is_named_with_its_problem(tmp_path, changes, words):
    manifest = write_manifest(tmp_path, _cohort(tmp_path, **changes))
    with pytest.raises(ValueError, match="manifest .*, row \\d+") as raised:
        load_site_cases(manifest, "A", 4, 8, np.random.default_rng(0))
    assert words in str(raised.value)


@pytest.mark.parametrize(
    ("row", "words"),
    [
        (["case0", "grade IV", "A", "train"], "row 2, case case0: grade must be one of ['LGG', 'HGG']"),
        (["case0", "HGG", "A", "holdout"], "split must be one of"),
        (["nowhere", "HGG", "A", "train"], "case nowhere: case folder not found"),
    ],
)
def test_a_bad_row_is_named_with_its_problem(tmp_path, row, words):
    write_brats_case(tmp_path, "case0")
    with pytest.raises(ValueError) as raised:
        load_site_cases(write_manifest(tmp_path, [row]), "A", 4, 8, np.random.default_rng(0))
    assert words in str(raised.value)


def test_a_manifest_without_the_needed_columns_or_site_is_refused(tmp_path):
    with pytest.raises(ValueError, match="missing columns \\['grade'\\]"):
        load_site_cases(write_manifest(tmp_path, [], columns=("case", "site")), "A", 4, 8, np.random.default_rng(0))
    manifest = write_manifest(tmp_path, _cohort(tmp_path))
    with pytest.raises(ValueError, match="no cases for site 'B'"):
        load_site_cases(manifest, "B", 4, 8, np.random.default_rng(0))
