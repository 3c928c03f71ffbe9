"""LLaVA conversation records -> token ids with answer-only labels -> padded batches.

A record (`id`, `image`, `conversations`) is matched to its cached patch grid by image path
(`feature_key`: the longest trailing part of `image`, without extension, that is a feature id:
an EmoScenes file name, or a WEBEmo path relative to its dataset root), so training never
re-encodes images.

At scale (the paper's 525k pre-training records) nothing is held whole: `RecordFile` reads a
LLaVA-format JSON list lazily (an index of byte offsets, one record parsed per access),
`LazyExamples` tokenises a record when asked for it, and a batch's patch grids are indexed
per batch (`patches[rows]`), so memory stays flat as records grow.

Records are tokenised once per training run: `cached_examples` writes every record's tokens
and labels to a token cache (flat int32 arrays, memory-mapped, so every process and every
DataLoader worker shares one copy) named by a hash of what makes the tokens (the records,
the tokenizer, the prompt template's source, the image-token count, `max_length`, the
system prompt and the feature ids), and later reads (other processes, a resumed run) open
it instead of tokenising again.
"""
from __future__ import annotations

import codecs
import hashlib
import json
import math
import os
import shutil
from array import array
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch

from tinyemo.errors import TinyEmoError
from tinyemo.mmllm import prompts
from tinyemo.mmllm.prompts import IGNORE, encode_conversation


class RecordFileError(TinyEmoError, ValueError):
    """A missing, truncated or malformed LLaVA-format record file; the message names it."""


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
        raise RecordFileError(f"{path} must hold a JSON list of LLaVA records")
    return records


def image_id(record: dict) -> str:
    return Path(record["image"]).stem


def feature_key(image: str, ids: Mapping[str, int] | set[str]) -> str | None:
    """The feature id an image path joins: the longest trailing part of the path, without its
    extension, that is one of `ids` (`/any/where/train/joy/12.jpg` -> `train/joy/12`, else
    `joy/12`, else `12`); None when no part is."""
    path = PurePosixPath(str(image).replace("\\", "/"))
    parts = (path.with_suffix("") if path.name else path).parts
    for start in range(len(parts)):
        key = "/".join(parts[start:])
        if key in ids:
            return key
    return None


def subsample(records: list[dict], n: int | None, seed: int) -> list[dict]:
    """A seeded random subset of `n` records (all of them when n is None or larger)."""
    if n is None or n >= len(records):
        return list(records)
    order = torch.randperm(len(records), generator=torch.Generator().manual_seed(seed))
    return [records[i] for i in sorted(order[:n].tolist())]


def _example(record: dict, rows: dict[str, int], tokenizer, n_image_tokens: int,
             max_length: int | None, system_prompt: str | None) -> Example:
    if not isinstance(record, dict) or "image" not in record or "conversations" not in record:
        raise RecordFileError(f"a LLaVA record needs `image` and `conversations`; got {str(record)[:120]}")
    key = feature_key(record["image"], rows)
    if key is None:
        raise KeyError(
            f"record {record.get('id')!r} refers to image {record['image']!r}, which has no "
            "cached features; re-run `dvc repro features`"
        )
    encoded = encode_conversation(tokenizer, record["conversations"], n_image_tokens,
                                  system_prompt, max_length)
    return Example(encoded.input_ids, encoded.labels, rows[key])


def build_examples(records: list[dict], tokenizer, feature_ids: list[str], n_image_tokens: int,
                   max_length: int | None = None, system_prompt: str | None = None) -> list[Example]:
    """Tokenise records whose image has cached features (a missing image is an error)."""
    rows = {key: row for row, key in enumerate(feature_ids)}
    return [_example(record, rows, tokenizer, n_image_tokens, max_length, system_prompt)
            for record in records]


class RecordFile(Sequence):
    """The records of a LLaVA-format JSON list (`[{"id", "image", "conversations"}, ...]`),
    read lazily: one streaming pass stores each record's byte offset, and `records[i]` parses
    record i alone. Memory holds 8 bytes per record, whatever the file's size. `image_root`
    is the folder the records' `image` paths are relative to (`image_path(i)`)."""

    CHUNK = 1 << 20

    def __init__(self, path: Path, image_root: Path | None = None):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path} is missing: give the LLaVA-format JSON file "
                                    "(a list of {id, image, conversations} records)")
        self.image_root = Path(image_root) if image_root is not None else None
        self.offsets = array("q")
        self._decoder = json.JSONDecoder()
        self._index()

    def _index(self) -> None:
        """Find where each top-level list item starts, decoding the file chunk by chunk."""
        decoder = codecs.getincrementaldecoder("utf-8")()
        with open(self.path, "rb") as handle:
            text, pos = "", 0
            mark, mark_byte = 0, 0  # a position in `text` and its byte offset in the file

            def refill() -> bool:
                nonlocal text, pos, mark
                more = handle.read(self.CHUNK)
                if not more:
                    return False
                text, pos, mark = text[mark:] + decoder.decode(more), pos - mark, 0
                return True

            def next_char() -> str:
                nonlocal pos
                while True:
                    pos = _skip(text, pos)
                    if pos < len(text):
                        return text[pos]
                    if not refill():
                        raise RecordFileError(f"{self.path} ends inside its JSON list (truncated?)")

            if next_char() != "[":
                raise RecordFileError(f"{self.path} must hold a JSON list of LLaVA records")
            pos += 1
            while True:
                char = next_char()
                if char == "]":
                    return
                if len(self.offsets):  # between items: a comma
                    if char != ",":
                        raise RecordFileError(f"{self.path} holds malformed JSON: expected ',' "
                                         f"after record {len(self.offsets) - 1}")
                    pos += 1
                    next_char()
                while True:
                    try:
                        _, end = self._decoder.raw_decode(text, pos)
                        if end < len(text) or not refill():
                            break
                    except json.JSONDecodeError as err:
                        if not refill():
                            raise RecordFileError(f"{self.path} holds malformed JSON: {err}") from None
                mark_byte += len(text[mark:pos].encode("utf-8"))
                mark = pos
                self.offsets.append(mark_byte)
                pos = end

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(f"record {index} of {len(self)} in {self.path}")
        with open(self.path, "rb") as handle:
            return self._read(handle, index % len(self))

    def _read(self, handle, index: int) -> dict:
        offset = self.offsets[index]
        end = self.offsets[index + 1] if index + 1 < len(self.offsets) else None
        handle.seek(offset)
        raw = handle.read(end - offset if end is not None else -1).decode("utf-8")
        record, _ = self._decoder.raw_decode(raw)
        return record

    def read(self, indices: Iterable[int] | None = None) -> Iterator[dict]:
        """The records at `indices` (default: all, in order), read through one open file."""
        with open(self.path, "rb") as handle:
            for index in range(len(self)) if indices is None else indices:
                yield self._read(handle, int(index))

    def __iter__(self) -> Iterator[dict]:
        return self.read()

    def digest(self) -> str:
        """A hash of the file's bytes (what the records are)."""
        hasher = hashlib.sha256()
        with open(self.path, "rb") as handle:
            for block in iter(lambda: handle.read(self.CHUNK), b""):
                hasher.update(block)
        return hasher.hexdigest()

    def image_path(self, index: int) -> Path:
        """The image file of record `index` (under `image_root`)."""
        image = Path(self[index]["image"])
        return self.image_root / image if self.image_root is not None else image

    def missing_images(self) -> list[str]:
        """Records whose image file is absent from `image_root` (empty: all present)."""
        return [str(self.image_path(i)) for i in range(len(self)) if not self.image_path(i).exists()]


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


class LazyExamples(Sequence):
    """`records[i]` tokenised when asked for (in the DataLoader's workers), never stored;
    a drop-in for the list of `build_examples` (the training loop reads only `len` and
    `examples[i]`)."""

    def __init__(self, records: Sequence[dict], tokenizer, feature_ids: Sequence[str],
                 n_image_tokens: int, max_length: int | None = None,
                 system_prompt: str | None = None):
        self.records = records
        self.tokenizer = tokenizer
        self.rows = {key: row for row, key in enumerate(feature_ids)}
        self.n_image_tokens, self.max_length, self.system_prompt = n_image_tokens, max_length, system_prompt

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Example:
        return _example(self.records[index], self.rows, self.tokenizer, self.n_image_tokens,
                        self.max_length, self.system_prompt)

    def cache_key(self) -> str:
        """The name of these examples' tokens: a hash of the records, the tokenizer, the
        prompt template (`prompts.py` itself), the settings and the feature ids."""
        hasher = hashlib.sha256()
        records = self.records
        hasher.update((records.digest() if hasattr(records, "digest") else
                       hashlib.sha256(json.dumps(list(records), sort_keys=True).encode()).hexdigest()).encode())
        hasher.update(tokenizer_digest(self.tokenizer).encode())
        hasher.update(Path(prompts.__file__).read_bytes())
        hasher.update(json.dumps([self.n_image_tokens, self.max_length, self.system_prompt]).encode())
        hasher.update("\n".join(self.rows).encode())
        return hasher.hexdigest()[:20]


def tokenizer_digest(tokenizer) -> str:
    """A hash of what a tokenizer does: its whole definition (fast tokenizers) or vocabulary,
    its chat template and special tokens."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    vocabulary = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    extra = json.dumps([type(tokenizer).__name__, getattr(tokenizer, "chat_template", None),
                        {k: str(v) for k, v in tokenizer.special_tokens_map.items()}], sort_keys=True)
    return hashlib.sha256((vocabulary + extra).encode()).hexdigest()


def _example_bytes(example: Example) -> bytes:
    """An example as the data hash reads it."""
    return (array("l", example.input_ids).tobytes() + array("l", example.labels).tobytes()
            + example.patch_row.to_bytes(8, "little", signed=True))


class TokenisedExamples(Sequence):
    """The examples of a token cache folder (written by `write_tokens`): every example's
    tokens and labels in two flat int32 files, their offsets and image rows, memory-mapped
    (DataLoader workers reopen them), with each example's length and the hash of all of
    them (`token_digest`, as `summarise` computes it) at hand."""

    FILES = {"input_ids": np.int32, "labels": np.int32, "offsets": np.int64, "patch_rows": np.int64}
    META = "tokens.json"  # written last: a folder holding it is complete

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.meta = json.loads((self.folder / self.META).read_text())
        self.token_digest = self.meta["token_digest"]
        self._open()

    def _open(self) -> None:
        for name, dtype in self.FILES.items():
            size = (self.folder / f"{name}.bin").stat().st_size // np.dtype(dtype).itemsize
            setattr(self, name, np.memmap(self.folder / f"{name}.bin", dtype=dtype, mode="r")
                    if size else np.zeros(0, dtype=dtype))

    def __getstate__(self):
        return {"folder": self.folder, "meta": self.meta, "token_digest": self.token_digest}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._open()

    def __len__(self) -> int:
        return len(self.patch_rows)

    def __getitem__(self, index: int) -> Example:
        if not -len(self) <= index < len(self):
            raise IndexError(f"example {index} of {len(self)}")
        index %= len(self)
        start, end = int(self.offsets[index]), int(self.offsets[index + 1])
        return Example(self.input_ids[start:end].tolist(), self.labels[start:end].tolist(),
                       int(self.patch_rows[index]))

    def lengths(self) -> list[int]:
        return np.diff(self.offsets).tolist()


def write_tokens(folder: Path, examples: Iterable[Sequence[Example]]) -> TokenisedExamples:
    """Write the examples (an iterable of lists of them, in order) to a token cache folder:
    under a temporary name, renamed into place once complete."""
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    hasher, offsets, rows, total = hashlib.sha256(), array("q", [0]), array("q"), 0
    with open(tmp / "input_ids.bin", "wb") as ids, open(tmp / "labels.bin", "wb") as labels:
        for chunk in examples:
            for example in chunk:
                ids.write(np.asarray(example.input_ids, dtype=np.int32).tobytes())
                labels.write(np.asarray(example.labels, dtype=np.int32).tobytes())
                total += len(example.input_ids)
                offsets.append(total)
                rows.append(example.patch_row)
                hasher.update(_example_bytes(example))
    (tmp / "offsets.bin").write_bytes(offsets.tobytes())
    (tmp / "patch_rows.bin").write_bytes(rows.tobytes())
    meta = {"n": len(rows), "tokens": total, "token_digest": hasher.hexdigest()}
    (tmp / TokenisedExamples.META).write_text(json.dumps(meta) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return TokenisedExamples(folder)


def cached_examples(source: LazyExamples, cache_dir: Path, accelerator=None,
                    num_workers: int = 0, chunk: int = 512) -> TokenisedExamples:
    """`source` tokenised once: the token cache `cache_dir/<source.cache_key()>`, written by
    the main process (`num_workers` DataLoader processes tokenising) while the others
    wait, and read by every process, now and when the run resumes. Other keys' caches in
    `cache_dir` are removed when a new one is written."""
    from torch.utils.data import DataLoader

    folder = Path(cache_dir) / source.cache_key()
    first = accelerator.main_process_first() if accelerator is not None else nullcontext()
    with first:
        if not (folder / TokenisedExamples.META).exists():
            for old in Path(cache_dir).glob("*") if Path(cache_dir).exists() else []:
                if old.is_dir() and old != folder:
                    shutil.rmtree(old, ignore_errors=True)
            loader = DataLoader(source, batch_size=chunk, num_workers=num_workers, collate_fn=list)
            write_tokens(folder, loader)
        return TokenisedExamples(folder)


HASHED_ROWS = 4096  # patch grids read into the data hash at most


def _walk(examples: Sequence[Example]) -> tuple[list[int], str, set[int]]:
    """(lengths, token digest, image rows) of examples, read one by one."""
    digest, lengths, rows = hashlib.sha256(), array("l"), set()
    for index in range(len(examples)):
        example = examples[index]
        lengths.append(len(example.input_ids))
        digest.update(_example_bytes(example))
        rows.add(example.patch_row)
    return lengths.tolist(), digest.hexdigest(), rows


def summarise(examples: Sequence[Example], patches) -> tuple[list[int], str]:
    """(token count of every example, a hash of the training data). The hash covers every
    example's tokens, labels and image row (read from a token cache's metadata, or in one
    pass) and the patch grids they read (up to `HASHED_ROWS` of them, evenly spaced), so a
    changed dataset of the same size is a different run."""
    if isinstance(examples, TokenisedExamples):
        lengths, tokens = examples.lengths(), examples.token_digest
        rows = set(np.unique(examples.patch_rows).tolist())
    else:
        lengths, tokens, rows = _walk(examples)
    digest = hashlib.sha256(tokens.encode())
    ordered = sorted(rows)
    if len(ordered) > HASHED_ROWS:  # at scale: evenly spaced rows (reading all is ~100 GiB)
        ordered = ordered[::math.ceil(len(ordered) / HASHED_ROWS)]
    for start in range(0, len(ordered), 256):
        block = torch.as_tensor(patches[ordered[start:start + 256]]).float().contiguous()
        digest.update(block.numpy().tobytes())
    return lengths, digest.hexdigest()[:16]


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


def training_batch(examples: list[Example], patches, pad_id: int) -> dict:
    """The padded batch of `examples`; only their patch grids are read (`patches[rows]`
    works on a tensor and on a memory-mapped store alike)."""
    batch = collate([e.input_ids for e in examples], pad_id, "right", [e.labels for e in examples])
    batch["patches"] = image_input(patches[[e.patch_row for e in examples]])
    return batch


def image_input(patches) -> torch.Tensor:
    """Patch grids as float32; integer token ids (shown as image tokens) stay integers."""
    tensor = torch.as_tensor(patches)
    return tensor.float() if tensor.is_floating_point() else tensor


def to_device(batch: dict, device) -> dict:
    """The batch's tensors on `device` (the model's or the accelerator's)."""
    return {key: value.to(device, non_blocking=True) if torch.is_tensor(value) else value
            for key, value in batch.items()}
