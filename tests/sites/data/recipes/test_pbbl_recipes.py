"""PBBL's split folders (SbP, GbP) read into debiasing manifests: the authors' own CSV files (a
BOM, an unnamed index column, absolute paths from their machine) resolved under the user's roots."""

import shutil

import pytest
from helpers.replicas import files_of, gbp_split, sbp_split, write_csv

from sites.data.recipes import DataRoots, build_recipe
from sites.errors import ConfigError

GBP_SITES = {"A": [0.6, 0.2], "B": [0.2, 0.2], "C": [0.2, 0.6]}


def prepare_sbp(split, nih, mimic, skip_bad=False):
    recipe = build_recipe({"recipe": "pbbl_sbp", "sites": {"NIH": 0, "MIMIC": 1}})
    return recipe.prepare(DataRoots(split, skip_bad, nih, mimic), ["NIH", "MIMIC"])


def prepare_gbp(split, nih, sites=GBP_SITES):
    recipe = build_recipe({"recipe": "pbbl_gbp", "sites": sites})
    return recipe.prepare(DataRoots(split, False, nih), list(sites))


def rewrite(path, old, new):
    path.write_text(path.read_text(encoding="utf-8-sig").replace(old, new), encoding="utf-8")


def test_sbp_s_files_become_a_manifest_of_the_two_sources_without_touching_the_folders(tmp_path):
    split, nih, mimic = sbp_split(tmp_path)
    before = files_of(tmp_path)
    prepared = prepare_sbp(split, nih, mimic)
    assert files_of(tmp_path) == before
    assert {site: dict(count) for site, count in prepared.counts().items()} == {
        "NIH": {"no pneumonia": 6, "pneumonia": 6}, "MIMIC": {"no pneumonia": 6, "pneumonia": 6}}
    nih_rows = [row for row in prepared.rows if row["site"] == "NIH"]
    assert {row["bias"] for row in nih_rows} == {"0"} and all(row["path"].endswith(".png") for row in nih_rows)
    assert all(row["path"].startswith(str(mimic / "files")) for row in prepared.rows if row["site"] == "MIMIC")
    assert {row["split"] for row in prepared.rows} == {"train", "test"}
    assert "pseudo bias labels that copy the label): NIH 0.500, MIMIC 0.500" in prepared.notes[0]


def test_a_csv_without_its_columns_is_refused_naming_file_and_column(tmp_path):
    split, nih, mimic = sbp_split(tmp_path)
    rewrite(split / "test.csv", "MIMIC", "source")
    with pytest.raises(ConfigError, match=rf"^data_root: {split / 'test.csv'}: no column 'MIMIC' \(expected "):
        prepare_sbp(split, nih, mimic)


def test_a_missing_split_file_is_refused(tmp_path):
    split, nih, mimic = sbp_split(tmp_path)
    (split / "train_NIH.csv").unlink()
    with pytest.raises(ConfigError, match=rf"^data_root: {split}: no train_NIH.csv$"):
        prepare_sbp(split, nih, mimic)


def test_an_image_not_under_the_roots_is_refused_naming_the_row_or_skipped(tmp_path):
    split, nih, mimic = sbp_split(tmp_path)
    next(nih.rglob("00000002_000.png")).unlink()
    with pytest.raises(ConfigError, match=rf"^nih_root: {split / 'train_NIH.csv'}, row 3: image 00000002_000 not "
                                          rf"found under nih_root {nih} \(data_skip_bad=true skips such cases\)$"):
        prepare_sbp(split, nih, mimic)
    prepared = prepare_sbp(split, nih, mimic, skip_bad=True)
    assert prepared.skipped == [f"{split / 'train_NIH.csv'}, row 3: image 00000002_000 not found under nih_root {nih}"]
    split, nih, mimic = sbp_split(tmp_path / "again")
    shutil.rmtree(mimic / "files")
    with pytest.raises(ConfigError, match=rf"^mimic_root: {split / 'train_MIMIC.csv'}, row 2: image .* not found"):
        prepare_sbp(split, nih, mimic)


def test_a_root_the_paths_need_is_asked_for(tmp_path):
    split, nih, mimic = sbp_split(tmp_path)
    with pytest.raises(ConfigError, match=r"^mimic_root: .*train_MIMIC.csv, row 2 names a MIMIC-CXR-JPG image: "
                                          r"set mimic_root=<folder holding files/>$"):
        prepare_sbp(split, nih, None)
    with pytest.raises(ConfigError, match=r"^nih_root: .*train_NIH.csv, row 2 names an NIH image"):
        prepare_sbp(split, None, mimic)


def test_a_label_value_not_understood_is_refused_naming_row_and_column(tmp_path):
    split, nih, mimic = sbp_split(tmp_path)
    path = split / "valid.csv"  # not read: the task has no validation split
    path.unlink()
    write_csv(split / "test.csv", ["path", "pneumonia", "MIMIC"],
              [["/home/authors/NIH_JPG/useful_images/00000001_000.jpg", "yes", 0]])
    with pytest.raises(ConfigError, match=rf"^data_root: {split / 'test.csv'}, row 2, column pneumonia: value 'yes' "
                                          r"not understood \(expected one of "):
        prepare_sbp(split, nih, mimic)


def test_gbp_deals_each_gender_s_patients_to_the_sites_in_their_shares(tmp_path):
    split, nih = gbp_split(tmp_path)
    prepared = prepare_gbp(split, nih)
    by_site = {site: [row for row in prepared.rows if row["site"] == site] for site in GBP_SITES}
    female = {site: sum(row["bias"] == "0" for row in rows) for site, rows in by_site.items()}
    male = {site: sum(row["bias"] == "1" for row in rows) for site, rows in by_site.items()}
    assert female["A"] > female["C"] and male["C"] > male["A"]  # 0.6 against 0.2 of each gender
    assert sum(female.values()) == sum(male.values()) == 32  # train and test; valid.csv is not read
    assert prepared.notes[0].startswith("bias = gender; share of each site's training images whose bias equals")


def test_a_gender_not_understood_is_refused(tmp_path):
    split, nih = gbp_split(tmp_path)
    rewrite(split / "train.csv", ",M\n", ",male\n")
    with pytest.raises(ConfigError, match=r"^data_root: .*train.csv, row \d+, column gender: value 'male' "
                                          r"not understood"):
        prepare_gbp(split, nih)


def test_shares_that_do_not_deal_every_patient_are_refused():
    with pytest.raises(ConfigError, match=r"^dataset.sites: the shares of bias-0 patients must be >= 0 and sum to 1 "
                                          r"\(got 0.8\)$"):
        build_recipe({"recipe": "pbbl_gbp", "sites": {"A": [0.6, 0.5], "B": [0.2, 0.5]}})


def test_a_site_dealt_too_few_patients_for_every_group_is_refused(tmp_path):
    split, nih = gbp_split(tmp_path, per_group=2)
    with pytest.raises(ConfigError, match=r"^data_root: site \w: no image of pneumothorax \d and gender bias \d in "
                                          r".*test.csv; every site needs each \(label, bias\) group there"):
        prepare_gbp(split, nih, {"A": [0.9, 0.9], "B": [0.05, 0.05], "C": [0.05, 0.05]})


def test_an_unreadable_image_is_refused_naming_the_row(tmp_path):
    split, nih = gbp_split(tmp_path)
    image = next(nih.rglob("00000003_000.png"))
    image.write_bytes(b"not an image")
    with pytest.raises(ConfigError, match=rf"^data_root: {split / 'train.csv'}, row 4: cannot read {image}: "):
        prepare_gbp(split, nih)
