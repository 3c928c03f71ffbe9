"""The dataset card of EmoScenes (markdown): counts, rules, mapping, biases, noise."""
from __future__ import annotations

from tinyemo.scenes import catalogue, rules, stats
from tinyemo.scenes.planted_bias import PlantedBias
from tinyemo.scenes.records import SPLITS, SceneRecord
from tinyemo.taxonomy import MIKELS8, MIKELS_TO_EKMAN


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def dataset_card(records: list[SceneRecord], biases: list[PlantedBias], label_noise: float,
                 seed: int, image_size: int) -> str:
    splits = stats.by_split(records)
    counts = stats.class_counts(records)
    parts = [
        "# EmoScenes dataset card",
        "",
        f"Synthetic scenes rendered at {image_size} px from seed {seed}: "
        f"{len(records)} images ({', '.join(f'{len(splits[s])} {s}' for s in SPLITS)}). "
        "Each image's emotion (Mikels-8) is a function of its scene graph (the rules below); "
        f"then a share `label_noise` = {label_noise:g} of labels is replaced by a different "
        "random emotion. `scenes.jsonl` keeps both (`rule_label`, `label`).",
        "",
        "## Images per class and split (`label`)",
        "",
        _table(["emotion", *SPLITS], [[e, *(counts[s][e] for s in SPLITS)] for e in MIKELS8]
               + [["total", *(len(splits[s]) for s in SPLITS)]]),
        "",
        "## Label noise (measured)",
        "",
        _table(["split", "label != rule_label", "rules agree with sampler target"],
               [[s, _pct(stats.noise_rate(splits[s])), _pct(stats.target_agreement(splits[s]))]
                for s in SPLITS]),
        "",
        "## Planted biases (measured in each split)",
        "",
    ]
    if biases:
        rows = []
        for b in biases:
            for s in SPLITS:
                m = stats.bias_strength(splits[s], b)
                rows.append([f"{b.attribute}={b.value} -> {b.emotion} (strength {b.strength:g})", s,
                             _pct(m["p_value_given_emotion"]), _pct(m["p_value_given_other"]),
                             _pct(m["base_rate"])])
        parts.append(_table(["bias", "split", "P(value given emotion)", "P(value given other)", "base rate"], rows))
    else:
        parts.append("None: every attribute value is drawn uniformly in every split.")
    parts += [
        "",
        "Attributes irrelevant to the rules (drawn uniformly unless a bias is planted): "
        + "; ".join(f"`{a}` in {{{', '.join(v)}}}" for a, v in catalogue.ATTRIBUTES.items()) + ".",
        "",
        "## Rules (cue weights; the label is the emotion with the highest total)",
        "",
        _table(["emotion", "source", "name", "weight"], [list(r) for r in rules.rules_table()]),
        "",
        "## Mikels-8 to Ekman-6 (`label_ekman`)",
        "",
        _table(["Mikels-8", "Ekman-6"], [[m, e] for m, e in MIKELS_TO_EKMAN.items()]),
        "",
    ]
    return "\n".join(parts)
