"""The one seeded, stratified split used by every dataset that lacks some of its splits.

Per class, the items are sorted by id and shuffled by a generator seeded with (seed, class
name); the first round(fraction * n) go to each named split and the rest stay in train, which
always keeps at least one item of every class. Seeding per class means that adding images of
one class never moves the images of another.
"""
from __future__ import annotations

import dataclasses
import zlib
from collections import defaultdict
from typing import Mapping, Sequence

import numpy as np

# A dataset with no split at all holds out 20 % as test: FI's upstream 80/20 (drawn there
# without a seed), used for every unsplit dataset so that they all read the same way.
TEST_FRACTION = 0.2
# Where upstream has no validation split, 10 % of train becomes val (model selection never
# touches test).
VAL_FRACTION = 0.1


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"the split seed must be a non-negative integer, got {seed!r}")
    return seed


def stratified_split(ids: Sequence[str], labels: Sequence[str], fractions: Mapping[str, float],
                     seed: int) -> dict[str, str]:
    """The split of every id: per label, round(fraction * n) ids to each split of `fractions`
    (e.g. {"val": 0.1}), the rest to "train" (at least one per label). Seeded: the same ids,
    labels, fractions and seed give the same split, whatever order the ids come in."""
    if len(ids) != len(labels):
        raise ValueError(f"{len(ids)} ids but {len(labels)} labels")
    check_seed(seed)
    if len(set(ids)) != len(ids):
        raise ValueError("ids must be unique")
    for name, fraction in fractions.items():
        if name == "train" or not 0.0 < fraction < 1.0:
            raise ValueError(f"split fractions must name held-out splits with a fraction in (0, 1), "
                             f"got {name}={fraction}")
    if sum(fractions.values()) >= 1.0:
        raise ValueError(f"the held-out fractions {dict(fractions)} leave nothing for train")
    by_label: dict[str, list[str]] = defaultdict(list)
    for item, label in zip(ids, labels):
        by_label[label].append(item)
    split_of: dict[str, str] = {}
    for label, members in by_label.items():
        rng = np.random.default_rng([seed, zlib.crc32(label.encode())])
        members = sorted(members)
        order = [members[i] for i in rng.permutation(len(members))]
        start = 0
        for name, count in _held_out_counts(len(order), fractions).items():
            split_of.update((item, name) for item in order[start:start + count])
            start += count
        split_of.update((item, "train") for item in order[start:])
    return split_of


def _held_out_counts(n: int, fractions: Mapping[str, float]) -> dict[str, int]:
    """round(fraction * n) per held-out split, trimmed (largest first) so train keeps one item."""
    counts = {name: int(np.floor(fraction * n + 0.5)) for name, fraction in fractions.items()}
    while counts and sum(counts.values()) > n - 1:
        largest = max(counts, key=counts.get)
        counts[largest] -= 1
    return counts


def carve(records: list, split: str, fraction: float, seed: int) -> list:
    """`records` (ImageRecords) with a stratified `fraction` of the train ones moved to `split`."""
    train = [r for r in records if r.split == "train"]
    split_of = stratified_split([r.id for r in train], [r.label for r in train], {split: fraction},
                                seed)
    return [dataclasses.replace(r, split=split_of[r.id]) if r.split == "train" else r
            for r in records]
