"""Measurements of a generated EmoScenes: class counts, noise, bias strength, baselines, text.

These numbers go into the dataset card and the stage's metrics; they are measured on the
records, never copied from the parameters.
"""
from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from tinyemo.scenes import catalogue
from tinyemo.scenes.planted_bias import PlantedBias
from tinyemo.scenes.records import SPLITS, SceneRecord
from tinyemo.scenes.teacher import parse_emotion, strip_answer_line
from tinyemo.taxonomy import MIKELS8


def by_split(records: list[SceneRecord]) -> dict[str, list[SceneRecord]]:
    return {split: [r for r in records if r.split == split] for split in SPLITS}


def class_counts(records: list[SceneRecord], field: str = "label") -> dict[str, dict[str, int]]:
    """{split: {emotion: count}} with every emotion present (zeros included)."""
    out = {}
    for split, items in by_split(records).items():
        counts = Counter(getattr(r, field) for r in items)
        labels = sorted(counts) if field == "label_ekman" else MIKELS8
        out[split] = {label: counts.get(label, 0) for label in labels}
    return out


def noise_rate(records: list[SceneRecord]) -> float:
    """Share of images whose label differs from the rule label."""
    return float(np.mean([r.noisy for r in records])) if records else float("nan")


def target_agreement(records: list[SceneRecord]) -> float:
    """Share of images where the rules agree with the emotion the sampler aimed at."""
    return float(np.mean([r.rule_label == r.target for r in records])) if records else float("nan")


def bias_strength(records: list[SceneRecord], bias: PlantedBias) -> dict[str, float]:
    """P(value | emotion) and P(value | other emotions), measured on `records`."""
    def share(items):
        return float(np.mean([r.attributes[bias.attribute] == bias.value for r in items])) if items else float("nan")

    own = [r for r in records if r.label == bias.emotion]
    return {"p_value_given_emotion": share(own),
            "p_value_given_other": share([r for r in records if r.label != bias.emotion]),
            "base_rate": bias.base_rate, "n_emotion": len(own)}


def rule_accuracy(records: list[SceneRecord]) -> float:
    """Top-1 of a classifier that recovers the rules exactly (the ceiling under label noise)."""
    return float(np.mean([r.rule_label == r.label for r in records])) if records else float("nan")


def palette_only_accuracy(train: list[SceneRecord], test: list[SceneRecord]) -> float:
    """Top-1 on `test` of the majority training label per palette (a one-cue baseline)."""
    votes: dict[str, Counter] = defaultdict(Counter)
    for r in train:
        votes[r.scene.palette][r.label] += 1
    overall = Counter(r.label for r in train).most_common(1)[0][0]
    predict = {p: (votes[p].most_common(1)[0][0] if votes[p] else overall) for p in catalogue.PALETTES}
    return float(np.mean([predict[r.scene.palette] == r.label for r in test])) if test else float("nan")


def reasoning_stats(finetune: list[dict], records: list[SceneRecord]) -> dict[str, float]:
    """Diversity and grounding of the fine-tuning answers.

    distinct_ratio: unique reasoning texts / records; mean_words: words per reasoning;
    key_object_mention: share of clean-label answers naming their strongest key object;
    label_parsed: share of answers whose `Emotion:` line parses back to the record's label.
    """
    by_id = {r.id: r for r in records}
    answers = [item["conversations"][1]["value"] for item in finetune]
    reasonings = [strip_answer_line(a) for a in answers]
    mentions = []
    for item, reasoning in zip(finetune, reasonings):
        record = by_id[item["id"]]
        if not record.noisy and record.key_objects:
            kind = catalogue.object_kind(record.key_objects[0])
            mentions.append(kind.noun in reasoning or kind.plural in reasoning)
    parsed = [parse_emotion(a) == by_id[item["id"]].label for item, a in zip(finetune, answers)]
    return {
        "distinct_ratio": len(set(reasonings)) / max(len(reasonings), 1),
        "mean_words": float(np.mean([len(r.split()) for r in reasonings])) if reasonings else 0.0,
        "key_object_mention": float(np.mean(mentions)) if mentions else float("nan"),
        "label_parsed": float(np.mean(parsed)) if parsed else float("nan"),
    }


def stage_metrics(records: list[SceneRecord], finetune: list[dict], pretrain: list[dict],
                  biases: list[PlantedBias], label_noise: float) -> dict:
    """The synthesize stage's metrics.json content (timings are added by the caller)."""
    splits = by_split(records)
    majority = Counter(r.label for r in splits["train"]).most_common(1)[0][0]
    metrics = {
        "n_images": len(records),
        **{f"n_{s}": len(splits[s]) for s in SPLITS},
        "counts": class_counts(records),
        "counts_ekman": class_counts(records, "label_ekman"),
        "label_noise_param": label_noise,
        **{f"noise_rate_{s}": noise_rate(splits[s]) for s in SPLITS},
        "target_agreement": target_agreement(records),
        "rule_accuracy_test": rule_accuracy(splits["test"]),
        "palette_only_accuracy_test": palette_only_accuracy(splits["train"], splits["test"]),
        "majority_accuracy_test": float(np.mean([r.label == majority for r in splits["test"]])),
        "n_pretrain_records_train": len(pretrain),
        "n_finetune_records_train": len(finetune),
        **{f"reasoning_{k}": v for k, v in reasoning_stats(finetune, records).items()},
        "planted_biases": [],
    }
    for b in biases:
        measured = {s: bias_strength(splits[s], b) for s in SPLITS}
        metrics["planted_biases"].append({
            "attribute": b.attribute, "value": b.value, "emotion": b.emotion, "strength": b.strength,
            **{f"p_value_given_emotion_{s}": measured[s]["p_value_given_emotion"] for s in SPLITS},
            **{f"p_value_given_other_{s}": measured[s]["p_value_given_other"] for s in SPLITS},
        })
    if metrics["planted_biases"]:
        first = metrics["planted_biases"][0]
        metrics["bias_strength_train"] = first["p_value_given_emotion_train"]
        metrics["bias_strength_test"] = first["p_value_given_emotion_test"]
    return metrics
