"""LLaVA conversation records -> token ids with answer-only labels -> padded batches.

A record (`id`, `image`, `conversations`) is matched to its cached patch grid by image id
(the file name of `image` without extension), so training never re-encodes images.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from tinyemo.mmllm.prompts import IGNORE, encode_conversation


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]
    patch_row: int  # row of the image's patch grid in the feature tensor


def read_records(path: Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; run `dvc repro synthesize` to write it")
    records = json.loads(path.read_text())
    if not isinstance(records, list):
        raise ValueError(f"{path} must hold a JSON list of LLaVA records")
    return records


def image_id(record: dict) -> str:
    return Path(record["image"]).stem


def subsample(records: list[dict], n: int | None, seed: int) -> list[dict]:
    """A seeded random subset of `n` records (all of them when n is None or larger)."""
    if n is None or n >= len(records):
        return list(records)
    order = torch.randperm(len(records), generator=torch.Generator().manual_seed(seed))
    return [records[i] for i in sorted(order[:n].tolist())]


def build_examples(records: list[dict], tokenizer, feature_ids: list[str], n_image_tokens: int,
                   max_length: int | None = None, system_prompt: str | None = None) -> list[Example]:
    """Tokenise records whose image has cached features (a missing image is an error)."""
    rows = {key: row for row, key in enumerate(feature_ids)}
    examples = []
    for record in records:
        key = image_id(record)
        if key not in rows:
            raise KeyError(
                f"record {record.get('id')!r} refers to image {key!r}, which has no cached "
                "features; re-run `dvc repro features`"
            )
        encoded = encode_conversation(tokenizer, record["conversations"], n_image_tokens,
                                      system_prompt, max_length)
        examples.append(Example(encoded.input_ids, encoded.labels, rows[key]))
    return examples


def pad_id_of(tokenizer) -> int:
    pad = tokenizer.pad_token_id
    return pad if pad is not None else tokenizer.eos_token_id


def collate(sequences: list[list[int]], pad_id: int, padding_side: str = "right",
            labels: list[list[int]] | None = None) -> dict[str, torch.Tensor]:
    """input_ids, attention_mask (and labels, padded with IGNORE) of equal length."""
    width = max(len(seq) for seq in sequences)

    def pad(seq: list[int], value: int) -> list[int]:
        gap = [value] * (width - len(seq))
        return gap + seq if padding_side == "left" else seq + gap

    out = {
        "input_ids": torch.tensor([pad(seq, pad_id) for seq in sequences]),
        "attention_mask": torch.tensor([pad([1] * len(seq), 0) for seq in sequences]),
    }
    if labels is not None:
        out["labels"] = torch.tensor([pad(lab, IGNORE) for lab in labels])
    return out


def training_batch(examples: list[Example], patches: torch.Tensor, pad_id: int) -> dict:
    batch = collate([e.input_ids for e in examples], pad_id, "right", [e.labels for e in examples])
    batch["patches"] = patches[[e.patch_row for e in examples]].float()
    return batch
