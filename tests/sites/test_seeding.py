"""Seed streams: the stream ids are fixed numbers, so the same seed keeps giving the same run."""

import numpy as np

from sites import seeding


def test_the_stream_ids_keep_their_numbers():
    assert {stream.name: int(stream) for stream in seeding.Stream} == {
        "DATA_TRAIN": 0, "DATA_TEST": 1, "LOCAL_TRAINING": 2, "MODEL_INIT": 3, "DATA_VALIDATION": 4,
        "SEQUENCE_SIGNATURE": 5, "DATA_REFERENCE": 6, "MARKERS": 7, "AUDIT": 8, "REPLAY": 9, "FAULTS": 10,
        "BAD_REPLY": 11, "DP_METRICS": 12, "LIRA_REFERENCE": 13, "PSEUDO_DOMAINS": 14}


def test_a_stream_gives_the_numbers_of_its_id():
    assert seeding.stream_seed(0, seeding.Stream.MODEL_INIT) == seeding.stream_seed(0, 3) == 2613022947
    assert seeding.stream_seed(0, 2, seeding.Stream.FAULTS, 5) == 1030191083
    draws = seeding.numpy_rng(0, 1, seeding.Stream.DATA_TEST).integers(1000, size=3)
    np.testing.assert_array_equal(draws, seeding.numpy_rng(0, 1, 1).integers(1000, size=3))


def test_streams_of_one_site_differ():
    assert len({seeding.stream_seed(0, 1, stream) for stream in seeding.Stream}) == len(seeding.Stream)
