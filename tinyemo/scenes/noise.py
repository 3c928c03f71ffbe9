"""Controlled label noise: a share of the rule labels is replaced by a different random label.

With probability `rate`, the label is re-drawn uniformly among the *other* seven Mikels-8
emotions, so the measured disagreement between `label` and `rule_label` is `rate` in
expectation (not 7/8 of it). Both labels are kept in the metadata.
"""
from __future__ import annotations

import numpy as np

from tinyemo.taxonomy import MIKELS8, check_label


def apply_label_noise(rng: np.random.Generator, rule_label: str, rate: float) -> str:
    check_label(rule_label)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"label noise must be within [0, 1], got {rate}")
    if rng.random() >= rate:
        return rule_label
    others = [e for e in MIKELS8 if e != rule_label]
    return others[int(rng.integers(len(others)))]
