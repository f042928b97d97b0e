"""Miniature replicas of the public datasets' folders, as their publishers lay them out: the exact
folder and file names, CSV headers (a UTF-8 BOM, an unnamed index column) and label values, with
a few tiny volumes or images."""

import csv
import os
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

PROSTATE_SITES = ("BIDMC", "BMC", "HK", "I2CVB", "RUNMC", "UCL")


def files_of(root: Path) -> set:
    """Every file under ``root`` with its size and modification time: what a preparer must leave alone."""
    return {(path, os.stat(path).st_size, os.stat(path).st_mtime_ns)
            for path in root.rglob("*") if path.is_file()}
BRATS_MODALITIES = ("t1", "t1ce", "t2", "flair")


def write_prostate_volume(folder: Path, case: str, mask_suffix: str = "_segmentation", labels=(1,),
                          shape=(16, 16, 6), extension=".nii.gz") -> None:
    """``<case><extension>`` and ``<case><mask_suffix><extension>``: a noisy volume with a bright
    box, and the box's mask with its slices labelled ``labels`` in turn."""
    rng = np.random.default_rng(len(folder.name) + len(case))
    mask = np.zeros(shape, dtype=np.uint8)
    for k, label in zip(range(1, shape[2] - 1), np.resize(labels, shape[2] - 2)):
        mask[4:11, 5:12, k] = label
    image = (100 + 10 * rng.normal(size=shape) + 60 * (mask > 0)).astype(np.float32)
    nib.save(nib.Nifti1Image(image, np.eye(4)), folder / f"{case}{extension}")
    nib.save(nib.Nifti1Image(mask, np.eye(4)), folder / f"{case}{mask_suffix}{extension}")


def prostate_release(root: Path, cases: int = 2) -> Path:
    """``Processed_data_nii/<site>/CaseNN.nii.gz`` with ``CaseNN_segmentation.nii.gz``: BMC's
    masks written ``_Segmentation`` as some mirrors do, HK's masks holding two zones (1 and 2)."""
    release = root / "Processed_data_nii"
    for site in PROSTATE_SITES:
        (release / site).mkdir(parents=True)
        for n in range(cases):
            write_prostate_volume(release / site, f"Case{n:02d}", "_Segmentation" if site == "BMC" else "_segmentation",
                                  labels=(1, 2) if site == "HK" else (1,))
    return release


def write_brats_case(folder: Path, case: str, extension: str = ".nii.gz", shape=(12, 12, 8),
                     modalities=BRATS_MODALITIES, mask: str | None = "seg") -> None:
    """``folder/<case>/<case>_<modality><extension>`` for each sequence, and its mask."""
    case_dir = folder / case
    case_dir.mkdir(parents=True)
    rng = np.random.default_rng(len(case))
    for modality in modalities:
        volume = (50 + 10 * rng.normal(size=shape)).astype(np.float32)
        nib.save(nib.Nifti1Image(volume, np.eye(4)), case_dir / f"{case}_{modality}{extension}")
    if mask is not None:
        nib.save(nib.Nifti1Image(np.zeros(shape, dtype=np.uint8), np.eye(4)), case_dir / f"{case}_{mask}{extension}")


#: Cases of the 2018 replica: (grade, institution, number); every institution with both grades
#: through TCIA's collections and BraTS 2013, CBICA with HGG only, as in the release.
BRATS_2018 = [("HGG", "TCIA01", 1), ("HGG", "TCIA02", 2), ("HGG", "TCIA08", 3), ("LGG", "TCIA09", 4),
              ("LGG", "TCIA10", 5), ("LGG", "TCIA13", 6), ("HGG", "CBICA", 7), ("HGG", "2013", 8),
              ("HGG", "2013", 9), ("LGG", "2013", 10), ("LGG", "2013", 11), ("LGG", "2013", 12)]


def brats_2018(root: Path, year: int = 2018) -> Path:
    """``MICCAI_BraTS_<year>_Data_Training/{HGG,LGG}/Brats18_<institution>_<n>_1/`` (``BraTS19_``
    for 2019)."""
    release = root / f"MICCAI_BraTS_{year}_Data_Training"
    prefix = "Brats18" if year == 2018 else "BraTS19"
    for grade, code, n in BRATS_2018:
        code_part = f"{code}_{n}" if code != "CBICA" else f"CBICA_A{n:02d}"
        write_brats_case(release / grade, f"{prefix}_{code_part}_1")
    if year == 2019:  # 2019's release has a name mapping too, without 2020's column
        write_csv(release / "name_mapping.csv", ["Grade", "BraTS_2017_subject_ID", "BraTS_2018_subject_ID",
                                                 "TCGA_TCIA_subject_ID", "BraTS_2019_subject_ID"], [])
    return release


def brats_2020(root: Path) -> Path:
    """``MICCAI_BraTS2020_TrainingData/BraTS20_Training_NNN/`` in ``.nii`` (as a widely used
    mirror stores them), ``name_mapping.csv`` with the grades and earlier ids; the last case is
    new in 2020 (no earlier id) and the one numbered 355 names its mask otherwise."""
    release = root / "MICCAI_BraTS2020_TrainingData"
    release.mkdir(parents=True)
    rows = []
    cases = [*BRATS_2018, ("HGG", None, 355)]
    for number, (grade, code, n) in enumerate(cases, start=1):
        case = f"BraTS20_Training_{(355 if n == 355 else number):03d}"
        write_brats_case(release, case, extension=".nii", mask="seg" if n != 355 else "Segm")
        earlier = "" if code is None else f"BraTS19_{code}_{n}_1"
        rows.append([grade, "NA", earlier or "NA", "NA", earlier or "NA", case])
    write_csv(release / "name_mapping.csv", ["Grade", "BraTS_2017_subject_ID", "BraTS_2018_subject_ID",
                                             "TCGA_TCIA_subject_ID", "BraTS_2019_subject_ID",
                                             "BraTS_2020_subject_ID"], rows)
    return release


def write_csv(path: Path, header, rows, bom: bool = False) -> Path:
    """A CSV file; ``bom``: starting with a UTF-8 byte order mark."""
    with path.open("w", newline="", encoding="utf-8-sig" if bom else "utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_png(path: Path, seed: int, size: int = 40) -> None:
    """A grey PNG of noise with a bright disc."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    disc = ((y - size / 2) ** 2 + (x - size / 2) ** 2) < (size / 4) ** 2
    pixels = np.clip(80 + 30 * rng.normal(size=(size, size)) + 90 * disc, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def nih_id(n: int) -> str:
    """A ChestX-ray14 image id: patient, then follow-up."""
    return f"{n:08d}_000"


def chestxray14(root: Path, ids) -> Path:
    """ChestX-ray14 as extracted: ``images_0NN/images/<id>.png``, the ids spread over two archives."""
    nih = root / "ChestX-ray14"
    for k, image_id in enumerate(ids):
        write_png(nih / f"images_{1 + k % 2:03d}" / "images" / f"{image_id}.png", seed=k)
    return nih


def mimic_path(n: int) -> str:
    """A MIMIC-CXR-JPG image below ``files/``."""
    return f"files/p1{n % 10}/p1{n:07d}/s5{n:07d}/{n:08x}-0000aaaa-1111bbbb-2222cccc-3333dddd.jpg"


def sbp_split(root: Path, per_group: int = 3) -> tuple[Path, Path, Path]:
    """``SbP-bias95/`` with ``train_MIMIC.csv`` (a UTF-8 BOM and an unnamed index column),
    ``train_NIH.csv`` (an unnamed index column), ``valid.csv`` and ``test.csv``, the paths the
    authors' own; and the NIH and MIMIC roots they resolve under. Returns (split, nih, mimic)."""
    split = root / "SbP-bias95"
    split.mkdir(parents=True)
    files = {"train_NIH.csv": [], "train_MIMIC.csv": [], "valid.csv": [], "test.csv": []}
    nih_ids, mimic_files, n = [], [], 0
    for name, rows in files.items():
        for source in (0, 1) if name in ("valid.csv", "test.csv") else (int(name == "train_MIMIC.csv"),):
            for label in (0, 1):
                for _ in range(per_group):
                    n += 1
                    if source:
                        mimic_files.append(mimic_path(n))
                        path = f"/media/authors/mimic-cxr-jpg-2.0.0.physionet.org/{mimic_path(n)}"
                    else:
                        nih_ids.append(nih_id(n))
                        path = f"/home/authors/NIH_JPG/useful_images/{nih_id(n)}.jpg"
                    rows.append([path, label, source])
    for name, rows in files.items():
        indexed = name.startswith("train_")
        write_csv(split / name, ([""] if indexed else []) + ["path", "pneumonia", "MIMIC"],
                  [([i] if indexed else []) + row for i, row in enumerate(rows)], bom=name == "train_MIMIC.csv")
    mimic = root / "mimic-cxr-jpg"
    for k, path in enumerate(mimic_files):
        write_png(mimic / path, seed=100 + k)  # a PNG under a .jpg name reads the same
    return split, chestxray14(root, nih_ids), mimic


def gbp_split(root: Path, per_group: int = 8) -> tuple[Path, Path]:
    """``GbP-case1/`` with ``train.csv``, ``valid.csv``, ``test.csv`` (``./dataset/GbP/<id>.png``
    paths, gender ``M``/``F``), and ChestX-ray14 they resolve under. Returns (split, nih)."""
    split = root / "GbP-case1"
    split.mkdir(parents=True)
    ids, n = [], 0
    for name in ("train.csv", "valid.csv", "test.csv"):
        rows = []
        for gender in ("F", "M"):
            for label in (0, 1):
                for _ in range(per_group):
                    n += 1
                    ids.append(nih_id(n))
                    rows.append([f"./dataset/GbP/{nih_id(n)}.png", label, gender])
        write_csv(split / name, ["path", "pneumothorax", "gender"], rows)
    return split, chestxray14(root, ids)
