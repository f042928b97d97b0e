"""A site's manifest rows into splits: the rows' own ``split`` column, or seeded and stratified
by class, and the fewest rows a site needs.

Every row is one case (an image, a volume, a folder of sequences) and stays whole in one
split. A row is a dict with a ``split`` entry (``""`` when the manifest names none) and, for
stratified tasks, a class entry.
"""

from collections.abc import Mapping, Sequence

import numpy as np

TRAIN = "train"


def check_splits(rows: Sequence[dict], held_out: Mapping[str, int], classes: str | None,
                 class_names: Mapping[int, str], where: str) -> None:
    """Raise ``ValueError`` unless every split can get a row of every class.

    With a ``split`` column every split must hold every class and every row must name its
    split; without it each class needs one row per split (training and each held-out split).

    Parameters
    ----------
    rows : sequence of dict
        One site's rows, each with ``split`` and ``line`` (its line in the manifest).
    held_out : mapping
        Held-out split name -> one in how many rows of a class it takes (``{"test": 5}``).
    classes : str or None
        The rows' entry holding their class; ``None`` for a task without classes.
    class_names : mapping
        Class value -> its name in messages (``{0: "LGG", 1: "HGG"}``); ignored without ``classes``.
    where : str
        Names the manifest and site in messages.
    """
    splits = [TRAIN, *held_out]
    named = [row for row in rows if row["split"]]
    if named and len(named) < len(rows):
        line = next(row["line"] for row in rows if not row["split"])
        raise ValueError(f"{where}: row {line} names no split while other rows of the site do")
    groups = {"": rows} if classes is None else {
        f" of {name}": [row for row in rows if row[classes] == value] for value, name in class_names.items()}
    for group, members in groups.items():
        if named:
            empty = [split for split in splits if not any(row["split"] == split for row in members)]
            if empty:
                raise ValueError(f"{where}: no rows{group} in split {empty[0]}; each of the splits {splits} "
                                 f"needs at least one")
        elif len(members) < len(splits):
            raise ValueError(f"{where}: {len(members)} row(s){group}, fewer than the {len(splits)} a site needs "
                             f"(one for each split: {', '.join(splits)})")


def assign_splits(rows: Sequence[dict], held_out: Mapping[str, int], classes: str | None,
                  rng: np.random.Generator) -> None:
    """Fill in the ``split`` of rows that name none (all of them, after :func:`check_splits`):
    within each class, in a seeded order, each held-out split takes one in ``held_out[name]``
    rows (at least one), the rest train. Rows that name their split are left as they are."""
    if any(row["split"] for row in rows):
        return
    values = sorted({row[classes] for row in rows}) if classes is not None else [None]
    for value in values:
        members = [row for row in rows if classes is None or row[classes] == value]
        order = iter(rng.permutation(len(members)).tolist())
        for split, every in held_out.items():
            for _ in range(max(1, len(members) // every)):
                members[next(order)]["split"] = split
        for i in order:
            members[i]["split"] = TRAIN
