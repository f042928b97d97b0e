"""BraTS-like multi-modal brain MRI volumes with a low- or high-grade glioma (docs/design.md#grading,
docs/design.md#data).

Every case is one brain (white matter, a cortical ribbon of grey matter, two ventricles) with
one tumor, seen through four co-registered sequences. The grade shows only through tumor
components, and each component shows in some sequences only (the table below, intensities
before acquisition):

==============  ====  ====  ====  =====  =========================================================
tissue          T1    T1ce  T2    FLAIR  grade evidence
==============  ====  ====  ====  =====  =========================================================
white matter    0.70  0.70  0.35  0.45
grey matter     0.50  0.50  0.55  0.55
CSF             0.15  0.15  0.95  0.10
solid tumor     0.40  0.40  0.70  0.70
enhancing rim   0.40  1.30  0.70  0.70   P(HGG) 0.85, P(LGG) 0.20; uptake x U(0.5, 1) per case
necrosis        0.20  0.20  0.85  0.40   P(HGG) 0.60, P(LGG) 0.05; small (half the core radius)
edema           0.55  0.55  0.75  0.85   larger around HGG, but the ranges overlap
==============  ====  ====  ====  =====  =========================================================

so T1ce (enhancement and necrosis) should grade best alone, T2 and FLAIR carry the weaker,
complementary edema cue, and T1 only the necrosis. Each sequence is also noisy in its own way
(:data:`SEQUENCE_ARTIFACTS`): T2 with heavy thermal noise, FLAIR with through-plane blur and a
strong bias field, T1ce with moderate noise; T1 is the cleanest but says the least. These values
are fixed from the phenomena above, not tuned for any model.

Shapes: volumes ``(N, 4, D, H, W)``: modalities in :data:`MODALITIES` order, ``D`` slices.
"""

import numpy as np

from ..spec import ScannerSignature

MODALITIES = ("t1", "t1ce", "t2", "flair")

# Rows follow the module docstring's table, columns MODALITIES.
_TISSUE = {
    "white": (0.70, 0.70, 0.35, 0.45),
    "grey": (0.50, 0.50, 0.55, 0.55),
    "csf": (0.15, 0.15, 0.95, 0.10),
    "solid": (0.40, 0.40, 0.70, 0.70),
    "rim": (0.40, 1.30, 0.70, 0.70),
    "necrosis": (0.20, 0.20, 0.85, 0.40),
    "edema": (0.55, 0.55, 0.75, 0.85),
}
# P(component present | grade), grade 0 = LGG, 1 = HGG.
_P_ENHANCING = (0.20, 0.85)
_P_NECROSIS = (0.05, 0.60)
# Edema radius = core radius x (1 + U(low, high)), per grade.
_EDEMA_GROWTH = ((0.2, 1.1), (0.5, 1.4))

#: What each sequence adds to the site's scanner signature (summed field by field).
SEQUENCE_ARTIFACTS = {
    "t1": {"noise": 0.02},
    "t1ce": {"noise": 0.06},
    "t2": {"noise": 0.15},
    "flair": {"noise": 0.04, "blur": 1.0, "bias_field": 0.3},
}
# Spread of a site's per-sequence gain (log-normal) and offset around its scanner's.
_SEQUENCE_GAIN_SPREAD, _SEQUENCE_OFFSET_SPREAD = 0.15, 0.05
# The default scenario's first site has contrast 0.30; lesion contrasts scale with |contrast| / 0.30.
_REFERENCE_CONTRAST = 0.30


def sequence_scanner(scanner: ScannerSignature, modality: str, rng: np.random.Generator) -> ScannerSignature:
    """A site's signature for one sequence: its scanner with a per-sequence gain and offset drawn
    from ``rng`` (seed it with the site, not the run, so a site keeps its look) plus the
    sequence's own artifacts."""
    gain = scanner.gain * float(np.exp(rng.normal(0.0, _SEQUENCE_GAIN_SPREAD)))
    offset = scanner.offset + float(rng.normal(0.0, _SEQUENCE_OFFSET_SPREAD))
    artifacts = {k: getattr(scanner, k) + v for k, v in SEQUENCE_ARTIFACTS[modality].items()}
    return scanner.replace(gain=gain, offset=offset, **artifacts)


def _ellipsoid(z, y, x, centre, radii):
    return sum(((a - c) / r) ** 2 for a, c, r in zip((z, y, x), centre, radii)) <= 1.0


def render_brain_volumes(grades: np.ndarray, depth: int, size: int, contrast: float,
                         rng: np.random.Generator) -> np.ndarray:
    """Intensities before acquisition.

    Parameters
    ----------
    grades : np.ndarray
        ``(N,)`` 0 (LGG) or 1 (HGG).
    depth, size : int
        Volumes are ``depth`` slices of ``size`` x ``size``.
    contrast : float
        The site's lesion contrast; every tumor component's difference from healthy tissue is
        scaled by ``|contrast| / 0.3`` (a sequence's polarity is fixed, so only the size counts).
    rng : np.random.Generator
        Draws the anatomy and the tumor of each case.

    Returns
    -------
    np.ndarray
        ``(N, 4, depth, size, size)`` float32.
    """
    grades = np.asarray(grades)
    n = len(grades)
    z, y, x = np.meshgrid(*(np.linspace(-1.0, 1.0, s, dtype=np.float32) for s in (depth, size, size)),
                          indexing="ij")
    z, y, x = z[None], y[None], x[None]

    def draw(low, high, shape=(n, 1, 1, 1)):  # one value per case, broadcastable over voxels
        return rng.uniform(low, high, size=shape).astype(np.float32)

    origin = (0.0, 0.0, 0.0)
    brain = _ellipsoid(z, y, x, origin, (draw(0.85, 0.95), draw(0.8, 0.92), draw(0.7, 0.82)))
    white = _ellipsoid(z, y, x, origin, (draw(0.65, 0.75), draw(0.62, 0.72), draw(0.52, 0.6)))
    ventricles = (_ellipsoid(z, y, x, (0.0, draw(-0.1, 0.05), -0.12), (0.3, draw(0.25, 0.35), 0.08))
                  | _ellipsoid(z, y, x, (0.0, draw(-0.1, 0.05), 0.12), (0.3, draw(0.25, 0.35), 0.08)))

    hgg = grades.reshape(n, 1, 1, 1) == 1
    side = np.where(rng.integers(2, size=(n, 1, 1, 1)) == 1, 1.0, -1.0).astype(np.float32)
    centre = (draw(-0.3, 0.3), draw(-0.3, 0.3), side * draw(0.25, 0.4))
    core = draw(0.2, 0.35)
    shape = (draw(0.8, 1.2), draw(0.8, 1.2), draw(0.8, 1.2))

    def tumor_part(scale):
        return _ellipsoid(z, y, x, centre, tuple(core * scale * s for s in shape))

    growth = np.where(hgg, draw(*_EDEMA_GROWTH[1]), draw(*_EDEMA_GROWTH[0]))
    enhancing = draw(0, 1) < np.where(hgg, _P_ENHANCING[1], _P_ENHANCING[0])
    necrotic = draw(0, 1) < np.where(hgg, _P_NECROSIS[1], _P_NECROSIS[0])
    uptake = draw(0.5, 1.0)  # contrast-agent timing and dose vary per case
    edema, solid = tumor_part(1.0 + growth) & brain, tumor_part(1.0)
    inner, necrosis = tumor_part(0.7), tumor_part(0.5) & necrotic
    rim = solid & ~inner & enhancing

    lesion_scale = abs(contrast) / _REFERENCE_CONTRAST
    volumes = np.empty((n, len(MODALITIES), depth, size, size), dtype=np.float32)
    for m in range(len(MODALITIES)):
        tissue = {name: values[m] for name, values in _TISSUE.items()}
        healthy = np.where(brain, np.where(white, tissue["white"], tissue["grey"]), 0.0)
        healthy = np.where(ventricles & brain, tissue["csf"], healthy).astype(np.float32)
        lesion = np.where(edema, tissue["edema"], healthy)
        lesion = np.where(solid, tissue["solid"], lesion)
        rim_value = tissue["solid"] + uptake * (tissue["rim"] - tissue["solid"])
        lesion = np.where(rim, rim_value, lesion)
        lesion = np.where(necrosis, tissue["necrosis"], lesion)
        volumes[:, m] = healthy + lesion_scale * (lesion - healthy)
    return volumes
