"""Federated statistics: counts the sites report, added up at the server."""

from collections.abc import Iterable, Mapping


def sum_counts(records: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Add up the sites' counts key by key; every site must report the same keys."""
    records = list(records)
    if not records:
        return {}
    keys = set(records[0])
    for record in records[1:]:
        if set(record) != keys:
            raise ValueError(f"sites reported different count keys: {sorted(keys)} vs {sorted(record)}")
    return {key: float(sum(record[key] for record in records)) for key in sorted(keys)}
