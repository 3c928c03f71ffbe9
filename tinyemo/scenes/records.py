"""Reading the EmoScenes data: per-image metadata (`scenes.jsonl`) and LLaVA conversations.

Layout of `data/emoscenes/` (written by `tinyemo.scenes.dataset.write_dataset`):

- `images/<split>/<id>.png`
- `scenes.jsonl`: one `SceneRecord` per line, every split
- `pretrain.json`, `finetune.json`: LLaVA conversation JSON of the training split;
  `pretrain_<split>.json`, `finetune_<split>.json` for `val` and `test` (references only)
- `dataset_card.md`
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tinyemo import paths
from tinyemo.errors import TinyEmoError
from tinyemo.scenes.graph import Scene

SPLITS = ("train", "val", "test")
CONVERSATION_KINDS = ("pretrain", "finetune")
MISSING_HINT = "run `dvc repro synthesize` (or `tinyemo stage synthesize`) to generate EmoScenes"


class MissingDataError(FileNotFoundError, TinyEmoError):
    """EmoScenes (or a part of it) is not where it should be; the message says how to make it."""


@dataclass(frozen=True)
class SceneRecord:
    id: str
    split: str
    image: str  # relative to <root>/images, e.g. "train/000123.png"
    label: str  # Mikels-8, after label noise: the label every model trains and is scored on
    label_ekman: str  # `label` mapped by tinyemo.taxonomy.MIKELS_TO_EKMAN
    rule_label: str  # Mikels-8, what the rules say (before noise)
    target: str  # the emotion the sampler aimed at (the rules may disagree)
    scene: Scene
    key_objects: list[str] = field(default_factory=list)  # object kinds driving rule_label
    key_colours: list[str] = field(default_factory=list)  # colour names driving rule_label
    biased: bool = False  # a planted bias set one of the attributes

    @property
    def attributes(self) -> dict[str, str]:
        return self.scene.attributes

    @property
    def noisy(self) -> bool:
        return self.label != self.rule_label

    def image_path(self, root: Path = paths.EMOSCENES) -> Path:
        return Path(root) / "images" / self.image

    def to_dict(self) -> dict:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "scene"}
        data.update(self.scene.to_dict())
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "SceneRecord":
        scene = Scene.from_dict(data)
        own = {k: data[k] for k in cls.__dataclass_fields__ if k != "scene"}
        return cls(scene=scene, **own)


def _require(path: Path) -> Path:
    if not path.exists():
        raise MissingDataError(f"{path} does not exist; {MISSING_HINT}")
    return path


def _check_split(split: str | None) -> None:
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")


def load_scene_records(root: Path = paths.EMOSCENES, split: str | None = None) -> list[SceneRecord]:
    """The metadata of every image (of one split if `split` is given), in id order."""
    _check_split(split)
    path = _require(Path(root) / "scenes.jsonl")
    records = []
    with path.open() as handle:
        for number, line in enumerate(handle, 1):
            try:
                record = SceneRecord.from_dict(json.loads(line))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
                raise MissingDataError(f"{path}:{number} is not a valid scene record ({err}); "
                                       f"{MISSING_HINT}") from None
            if split is None or record.split == split:
                records.append(record)
    return records


def conversations_path(kind: str, split: str = "train", root: Path = paths.EMOSCENES) -> Path:
    if kind not in CONVERSATION_KINDS:
        raise ValueError(f"unknown conversation kind {kind!r}; valid: {', '.join(CONVERSATION_KINDS)}")
    _check_split(split)
    return Path(root) / (f"{kind}.json" if split == "train" else f"{kind}_{split}.json")


def load_conversations(kind: str, split: str = "train", root: Path = paths.EMOSCENES) -> list[dict]:
    """LLaVA records (`id`, `image` relative to `<root>/images`, `conversations`)."""
    path = _require(conversations_path(kind, split, root))
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise MissingDataError(f"{path} is not valid JSON ({err}); {MISSING_HINT}") from None
