"""The counterfactual probe of the `bias` stage: which pairs it tests, and how they are summarised.

- `suspect_pairs`: every planted bias, then the group pairs the analysed projectors flag
  (the top-k flagged rows of each group table), each (attribute, value, emotion) once;
- `probe_suspects`: the flip rates of every projector on each suspect's counterfactual pairs,
  split into planted biases and other flagged pairs;
- `mean_flip_rates`: the flip rates of the planted biases averaged per projector;
- `report_flips`: both sets in one mapping for the report, the unplanted ones marked.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import pandas as pd

from tinyemo.bias.counterfactual import encode_pairs, flip_rates


@dataclass(frozen=True)
class Suspect:
    attribute: str
    value: str
    emotion: str
    planted: bool  # a bias planted in the training split, rather than a pair a projector flags

    @property
    def label(self) -> str:
        return f"{self.attribute}={self.value} -> {self.emotion}"


def suspect_pairs(planted: Sequence[Mapping], groups: Sequence[pd.DataFrame], top_k: int) -> list[Suspect]:
    """The planted biases, then the top-k flagged pairs of each group table not already listed.

    Group tables are ranked `associate` tables whose predictors read `attribute=value`.
    """
    found = {(b["attribute"], b["value"], b["emotion"]): True for b in planted}
    for table in groups:
        for row in table[table.flagged].head(top_k).itertuples():
            if "=" not in row.predictor:
                raise ValueError(f"group predictor {row.predictor!r} is not of the form attribute=value")
            attribute, value = row.predictor.split("=", 1)
            found.setdefault((attribute, value, row.emotion), False)
    return [Suspect(attribute, value, emotion, is_planted)
            for (attribute, value, emotion), is_planted in found.items()]


def probe_suspects(suspects: Sequence[Suspect], projectors: Mapping[str, object], tower, scenes,
                   image_size: int, batch_size: int, pooled=None, limit: int | None = None,
                   precision: str = "fp32") -> tuple[dict[str, dict], dict[str, dict]]:
    """Flip rates {suspect label: {projector name: rates}}, for planted and for other suspects.

    Each suspect's counterfactual pairs are rendered and encoded once (see `encode_pairs`,
    whose `pooled`, `limit` and `precision` these are) and scored by every projector.
    """
    planted, others = {}, {}
    for suspect in suspects:
        pairs = encode_pairs(tower, scenes, suspect.attribute, suspect.value, image_size, batch_size,
                             pooled=pooled, limit=limit, precision=precision)
        rates = {name: flip_rates(projector, pairs, suspect.emotion) for name, projector in projectors.items()}
        (planted if suspect.planted else others)[suspect.label] = rates
    return planted, others


RATES = {"toward": "toward_rate", "any": "flip_rate"}  # metric name part -> flip_rates key


def mean_flip_rates(flips: Mapping[str, Mapping[str, dict]], projectors: Sequence[str],
                    digits: int = 4) -> dict[str, float | None]:
    """`flip_<toward|any>_<projector>`: that rate averaged over the probed pairs (None if none)."""
    means = {}
    for name, key in RATES.items():
        for projector in projectors:
            values = [by_projector[projector][key] for by_projector in flips.values()]
            means[f"flip_{name}_{projector}"] = round(sum(values) / len(values), digits) if values else None
    return means


def report_flips(planted: Mapping[str, dict], others: Mapping[str, dict]) -> dict[str, dict]:
    """The planted biases' flip rates, then the other suspects' with "(not planted)" added."""
    return {**planted, **{f"{label} (not planted)": rates for label, rates in others.items()}}
