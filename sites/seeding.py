"""Seed streams: one top-level seed fans out into independent, reproducible streams.

Every random draw in a run comes from a stream named by integers (site index, purpose, call
number), so the same seed gives the same numbers whichever Ray actor or process runs the work.
"""

import random
from enum import IntEnum

import numpy as np
import torch


class Stream(IntEnum):
    """Purposes, so that two streams of the same site never collide. The values are part of every
    stream's path: changing one changes the numbers a seed gives."""

    DATA_TRAIN = 0
    DATA_TEST = 1
    LOCAL_TRAINING = 2
    MODEL_INIT = 3
    DATA_VALIDATION = 4
    # Seeded by the site alone (not the run's seed): how a site's scanner renders each sequence.
    SEQUENCE_SIGNATURE = 5
    # Fresh samples of a site's distribution for the reference models of the privacy audit.
    DATA_REFERENCE = 6
    MARKERS = 7
    AUDIT = 8
    # Replay: the server's generator (initialisation, prompts, sampling) and the real buffer's choice.
    REPLAY = 9
    # Simulated site failures (sites.faults): which training calls crash.
    FAULTS = 10
    # Simulated bad replies (sites.faults): which training calls spoil their reply.
    BAD_REPLY = 11
    # The noise of a DP site's released training loss (privacy.train_metrics=noise), per call.
    DP_METRICS = 12
    # The likelihood-ratio attack's reference models: each one's initialisation and data draw.
    LIRA_REFERENCE = 13
    # PGA's pseudo-domains: each training call's scanner signatures and noise.
    PSEUDO_DOMAINS = 14


def stream_seed(seed: int, *path: int) -> int:
    """A 32-bit seed derived from ``seed`` and a path of non-negative integers."""
    return int(np.random.SeedSequence([seed, *path]).generate_state(1)[0])


def numpy_rng(seed: int, *path: int) -> np.random.Generator:
    """A numpy generator for one stream."""
    return np.random.default_rng(np.random.SeedSequence([seed, *path]))


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (Flower samples with ``random``)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
