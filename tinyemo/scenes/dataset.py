"""Generate EmoScenes: sample, label, bias, render and teach every image, then write it all.

Each split has its own random streams derived from (seed, split), one per concern (scenes,
label noise, planted biases, option order), so changing e.g. the label noise leaves the
scenes of every split unchanged. Image ids are global and zero-padded (`000123`): train
first, then val, then test. Everything is written to a temporary folder beside the target
and renamed into place at the end, so a failure never leaves a folder that looks complete.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from tinyemo import paths
from tinyemo.scenes import planted_bias as bias_mod
from tinyemo.scenes import rules
from tinyemo.scenes.noise import apply_label_noise
from tinyemo.scenes.records import SPLITS, SceneRecord, conversations_path
from tinyemo.scenes.render import render_scene
from tinyemo.scenes.sampling import sample_scene
from tinyemo.scenes.teacher import RuleTeacher, choose_options
from tinyemo.taxonomy import MIKELS8, to_ekman

PNG_COMPRESS_LEVEL = 1  # fast; the images are flat-coloured and compress well anyway
PRETRAIN_KINDS = ("caption", "vqa", "sentiment")


@dataclass(frozen=True)
class GenerationReport:
    n_images: int
    render_seconds: float  # rendering + PNG encoding only
    teacher_seconds: float
    total_seconds: float

    @property
    def images_per_second(self) -> float:
        return self.n_images / max(self.render_seconds, 1e-9)


def _streams(seed: int, split: str) -> dict[str, np.random.Generator]:
    index = SPLITS.index(split)
    return {name: np.random.default_rng([seed, index, k])
            for k, name in enumerate(("scene", "noise", "bias"))}


def build_records(sizes: dict[str, int], *, seed: int, label_noise: float,
                  planted_biases: list | None = None) -> list[SceneRecord]:
    """Sample and label every image of every split (no pixels, no text)."""
    biases = bias_mod.check_biases(planted_biases or [])
    unknown = set(sizes) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown split(s) {sorted(unknown)}; valid splits: {', '.join(SPLITS)}")
    records, number = [], 0
    for split in SPLITS:
        streams = _streams(seed, split)
        for _ in range(sizes.get(split, 0)):
            target = MIKELS8[int(streams["scene"].integers(len(MIKELS8)))]
            scene = sample_scene(streams["scene"], target)
            rule_label = rules.rule_label(scene)
            label = apply_label_noise(streams["noise"], rule_label, label_noise)
            biased = False
            if split == "train":
                scene, biased = bias_mod.plant(streams["bias"], scene, label, biases)
            key_objects, key_colours = rules.key_elements(scene, rule_label)
            image_id = f"{number:06d}"
            records.append(SceneRecord(
                id=image_id, split=split, image=f"{split}/{image_id}.png", label=label,
                label_ekman=to_ekman(label), rule_label=rule_label, target=target, scene=scene,
                key_objects=key_objects, key_colours=key_colours, biased=biased,
            ))
            number += 1
    return records


def conversations(records: list[SceneRecord], teacher: RuleTeacher, seed: int) -> dict[str, dict[str, list]]:
    """{kind: {split: LLaVA records}}; pre-training records of a split in shuffled order."""
    out = {"pretrain": {s: [] for s in SPLITS}, "finetune": {s: [] for s in SPLITS}}
    teacher.prepare(records)  # a language model writes its texts in batches
    for record in tqdm(records, desc="teacher", mininterval=5):
        for kind, conv in zip(PRETRAIN_KINDS, teacher.pretrain_records(record.scene)):
            out["pretrain"][record.split].append(
                {"id": f"{record.id}-{kind}", "image": record.image, "conversations": conv})
        options = choose_options(random.Random(f"{seed}:options:{record.id}"), record.label)
        out["finetune"][record.split].append({
            "id": record.id, "image": record.image,
            "conversations": teacher.finetune_record(record.scene, record.label, options),
        })
    for split in SPLITS:
        random.Random(f"{seed}:pretrain-order:{split}").shuffle(out["pretrain"][split])
    return out


def render_images(records: list[SceneRecord], images_dir: Path, image_size: int) -> float:
    """Render and save every image; return the seconds spent."""
    started = time.perf_counter()
    for split in SPLITS:
        (images_dir / split).mkdir(parents=True, exist_ok=True)
    for record in tqdm(records, desc="render", mininterval=5):
        render_scene(record.scene, image_size).save(
            images_dir / record.image, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    return time.perf_counter() - started


def _write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False))


def write_dataset(records: list[SceneRecord], teacher: RuleTeacher, *, seed: int, image_size: int,
                  root: Path = paths.EMOSCENES, card: str | None = None) -> GenerationReport:
    """Write images, scenes.jsonl, the conversation files and the card; atomically."""
    started = time.perf_counter()
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        render_seconds = render_images(records, tmp / "images", image_size)
        with (tmp / "scenes.jsonl").open("w") as handle:
            for record in records:
                handle.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
        teacher_started = time.perf_counter()
        convs = conversations(records, teacher, seed)
        teacher_seconds = time.perf_counter() - teacher_started
        for kind, by_split in convs.items():
            for split, items in by_split.items():
                _write_json(conversations_path(kind, split, tmp), items)
        if card is not None:
            (tmp / "dataset_card.md").write_text(card)
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return GenerationReport(len(records), render_seconds, teacher_seconds,
                            time.perf_counter() - started)


def synthesize(*, n_train: int, n_val: int, n_test: int, image_size: int, label_noise: float,
               planted_biases: list, teacher: str | RuleTeacher = "rule", seed: int = 0,
               root: Path = paths.EMOSCENES) -> tuple[list[SceneRecord], GenerationReport]:
    """The whole stage: build the records, write images, conversations and the card."""
    from tinyemo.scenes.card import dataset_card
    from tinyemo.scenes.llm_teacher import make_teacher

    biases = bias_mod.check_biases(planted_biases)
    if isinstance(teacher, str):
        teacher = make_teacher(teacher, seed)
    records = build_records({"train": n_train, "val": n_val, "test": n_test}, seed=seed,
                            label_noise=label_noise, planted_biases=biases)
    card = dataset_card(records, biases, label_noise, seed, image_size)
    report = write_dataset(records, teacher, seed=seed, image_size=image_size, root=root, card=card)
    return records, report
