"""The paper's MM-LLM data as training examples: a LLaVA-format record file joined to the
feature set its images were encoded in (params `records_file` and `records_features`).

TinyEmo-Pretrain-525k and TinyEmo-EmoReason are JSON lists of `{id, image, conversations}`
records over WEBEmo's training images; stage `encode` writes those images' patch grids to
`data/features/webemo/train`, with ids that are paths relative to the dataset root
(`train/nervousness/220_F_49388255`). A record joins the feature row whose id is the longest
trailing part of its `image` path without extension (`data.feature_key`), so upstream's
absolute paths (`/root/.../partitioned_WEBEmo_fine/train/nervousness/220_F_49388255.jpg`)
join as shipped. Records whose image has no features are counted and left out; none
joining at all is an error naming both files and an id of each.

Cost: `RecordFile` indexes the file in one streaming pass, and the join reads every record
once more, one at a time (memory: 16 bytes per record, whatever the file's size). The
`n_records` subset is then drawn, seeded, from the joined records, and `LazyExamples`
tokenises each when asked for it (once per run: the stage keeps the tokens in a cache,
`data.cached_examples`).
"""
from __future__ import annotations

import hashlib
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from tinyemo.errors import TinyEmoError
from tinyemo.mmllm.data import LazyExamples, RecordFile, RecordFileError, feature_key


class RecordsError(TinyEmoError, ValueError):
    """A records parameter names a file that is missing, unreadable or joins no features."""


def records_path(value: str, parameter: str) -> Path:
    """The JSON file `value` names: the file itself, or the only `*.json` of a folder (as
    `huggingface-cli download --local-dir` leaves a dataset repository)."""
    path = Path(value)
    if path.is_dir():
        found = sorted(path.glob("*.json"))
        if len(found) != 1:
            raise RecordsError(f"{parameter}: the folder {path} holds {len(found)} JSON files "
                               f"({', '.join(f.name for f in found) or 'none'}); name the file")
        return found[0]
    if not path.is_file():
        raise RecordsError(f"{parameter}: {path} does not exist; download the records (README, "
                           "'Running the paper profile on GPUs') or set it to null")
    return path


class Picked(Sequence):
    """The records of `source` at `indices`, in that order (read when asked for)."""

    def __init__(self, source: RecordFile, indices: Sequence[int]):
        self.source, self.indices = source, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict:
        return self.source[self.indices[index]]

    def digest(self) -> str:
        """A hash of the file and of which of its records these are."""
        chosen = array("q", self.indices).tobytes()
        return hashlib.sha256(self.source.digest().encode() + chosen).hexdigest()


@dataclass
class Joined:
    indices: array  # records with features, in file order
    n_records: int  # records in the file
    missing: int  # records whose image has no features
    missing_example: str | None  # the image of the first of them


def join(records: RecordFile, feature_ids: Sequence[str]) -> Joined:
    """Which records of the file have features (one pass, one record in memory at a time)."""
    ids = set(feature_ids)
    indices, missing, example = array("q"), 0, None
    for index, record in enumerate(records.read()):
        image = record.get("image") if isinstance(record, dict) else None
        if image is None:
            raise RecordFileError(f"{records.path}: record {index} has no `image`")
        if feature_key(image, ids) is None:
            missing += 1
            example = example or str(image)
        else:
            indices.append(index)
    return Joined(indices, len(records), missing, example)


def record_examples(parameter: str, params, tokenizer, features, n: int | None, seed: int,
                    n_image_tokens: int) -> LazyExamples:
    """A seeded subset of `n` joined records (None: all) of `params.records_file`, tokenised
    lazily against `features` (the set `params.records_features` names). `parameter` is the
    section name, for messages. The returned sequence carries the join (`.joined`)."""
    path = records_path(params.records_file, f"{parameter}.records_file")
    try:
        records = RecordFile(path)
    except (RecordFileError, OSError) as err:
        raise RecordsError(f"{parameter}.records_file: {err}") from None
    joined = join(records, features.ids)
    if not joined.indices:
        raise RecordsError(
            f"{parameter}.records_file: none of the {joined.n_records} records of {path} has "
            f"features in {params.records_features} (a record's image: "
            f"{joined.missing_example!r}; a feature id: {features.ids[0]!r}); a feature id must "
            "be a trailing part of the image path, without extension")
    if joined.missing:
        print(f"{parameter}: {joined.missing} of {joined.n_records} records of {path} have no "
              f"features in {params.records_features} and are left out (e.g. {joined.missing_example})")
    chosen = joined.indices
    if n is not None and n < len(chosen):
        order = torch.randperm(len(chosen), generator=torch.Generator().manual_seed(seed))
        chosen = array("q", (chosen[i] for i in sorted(order[:n].tolist())))
    examples = LazyExamples(Picked(records, chosen), tokenizer, features.ids, n_image_tokens,
                            params.max_length, params.system_prompt)
    examples.joined = joined
    return examples


def records_features(parameter: str, value: str):
    """The feature set `records_features` names (a folder written by `encode`)."""
    from tinyemo.feature_store import FeatureError, FeatureSet

    path = Path(value)
    if not path.exists():
        raise RecordsError(f"{parameter}.records_features: {path} does not exist; run "
                           "`dvc repro encode@webemo` (with webemo in encode.patches)")
    try:
        features = FeatureSet.load(path)
    except FeatureError as err:
        raise RecordsError(f"{parameter}.records_features: {err}") from None
    if features.patches is None:
        raise RecordsError(f"{parameter}.records_features: {path} holds no patch grids; add its "
                           "dataset to encode.patches and rerun `encode`")
    return features
