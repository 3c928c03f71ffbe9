"""Training data at scale: LLaVA-format JSON read lazily, records tokenised on demand,
patch grids read per batch, and memory flat in the number of records."""
import json
import subprocess
import sys
import textwrap

import pytest
import torch

from tests.mmllm_helpers import N_IMAGE_TOKENS, examples_and_patches, records, tiny_mmllm
from tinyemo.mmllm import artifact
from tinyemo.mmllm.data import LazyExamples, RecordFile, build_examples, summarise, training_batch
from tinyemo.mmllm.train import TrainConfig, train


def write(path, items, **dump):
    path.write_text(json.dumps(items, **dump))
    return path


def test_a_record_file_reads_every_record_back(tmp_path, monkeypatch):
    items = records(50)
    items[7]["conversations"][1]["value"] = "Ünïcode ✓ \"quoted\", [brackets] {braces}"
    monkeypatch.setattr(RecordFile, "CHUNK", 64)  # records cross many chunk boundaries
    for dump in ({}, {"indent": 2, "ensure_ascii": False}):
        loaded = RecordFile(write(tmp_path / "r.json", items, **dump), image_root=tmp_path)
        assert len(loaded) == 50 and list(loaded) == items and loaded[-1] == items[-1]
    assert loaded.image_path(3) == tmp_path / "train/003.png"
    assert len(loaded.missing_images()) == 50
    (tmp_path / "train").mkdir()
    for i in range(50):
        (tmp_path / f"train/{i:03d}.png").write_bytes(b"")
    assert loaded.missing_images() == []
    assert len(RecordFile(write(tmp_path / "e.json", []))) == 0


@pytest.mark.parametrize("text, message", [
    ('{"id": 1}', "must hold a JSON list"),
    ('[{"id": 1}, {"id": ', "malformed JSON|truncated"),
    ('[{"id": 1} {"id": 2}]', "malformed JSON"),
])
def test_a_broken_record_file_is_refused(tmp_path, text, message):
    (tmp_path / "bad.json").write_text(text)
    with pytest.raises(ValueError, match=message):
        RecordFile(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="LLaVA-format JSON"):
        RecordFile(tmp_path / "absent.json")


def test_lazy_examples_train_exactly_like_tokenised_ones(tmp_path):
    model, tokenizer = tiny_mmllm()
    eager, patches = examples_and_patches(tokenizer)
    lazy = LazyExamples(RecordFile(write(tmp_path / "r.json", records(8))), tokenizer,
                        [f"{i:03d}" for i in range(8)], N_IMAGE_TOKENS)
    assert [lazy[i] for i in range(8)] == eager
    assert summarise(lazy, patches) == summarise(eager, patches)
    weights = []
    for examples, workers in ((eager, 0), (lazy, 2)):
        model, _ = tiny_mmllm()
        artifact.set_trainable(model, "connector")
        train(model, examples, patches, tokenizer.pad_token_id,
              TrainConfig(epochs=2, batch_size=4, lr=1e-2, checkpoint_every=0, num_workers=workers))
        weights.append({n: p.detach().clone() for n, p in model.connector.named_parameters()})
    assert all(torch.equal(weights[0][n], weights[1][n]) for n in weights[0])


def test_batches_read_only_their_own_patch_grids():
    class CountingStore:
        """A stand-in for a memory-mapped patch store: records which rows are read."""

        def __init__(self, grid):
            self.grid, self.read = grid, []

        def __getitem__(self, rows):
            self.read.append(list(rows))
            return self.grid[rows].half()  # stored in fp16, read per batch

    _, tokenizer = tiny_mmllm()
    examples, patches = examples_and_patches(tokenizer)
    store = CountingStore(patches)
    batch = training_batch([examples[5], examples[2]], store, tokenizer.pad_token_id)
    assert store.read == [[5, 2]] and batch["patches"].dtype == torch.float32
    assert torch.allclose(batch["patches"], patches[[5, 2]], atol=1e-2)
    with pytest.raises(KeyError, match="no cached features"):
        build_examples(records(2), tokenizer, ["000"], N_IMAGE_TOKENS)


PEAK = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    path, how = Path(sys.argv[1]), sys.argv[2]
    from tinyemo.mmllm.data import RecordFile, read_records

    def peak_kb():
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])

    Path("/proc/self/clear_refs").write_text("5")  # peak RSS from here on
    base = peak_kb()
    if how == "lazy":
        records = RecordFile(path)
        seen = sum(len(records[i]["conversations"]) for i in range(0, len(records), 97))
    else:
        records = read_records(path)
        seen = sum(len(records[i]["conversations"]) for i in range(0, len(records), 97))
    print(json.dumps({"n": len(records), "growth_mb": (peak_kb() - base) / 1024}))
""")


def test_memory_of_the_record_path_is_flat_in_the_number_of_records(tmp_path):
    """Peak RSS growth while reading 3k and 30k records (about 1 KB each): the lazy reader
    grows by the offsets only (8 bytes a record); reading the JSON whole grows tenfold."""
    template = records(1)[0]
    template["conversations"][1]["value"] = "A long reasoning about the image. " * 28
    growth = {}
    for n in (3000, 30000):
        path = tmp_path / f"{n}.json"
        path.write_text(json.dumps([dict(template, id=f"r{i}") for i in range(n)]))
        for how in ("lazy", "whole"):
            done = subprocess.run([sys.executable, "-c", PEAK, str(path), how], capture_output=True,
                                  text=True, check=True)
            growth[how, n] = json.loads(done.stdout)["growth_mb"]
    assert growth["whole", 30000] > 20 + growth["whole", 3000], growth  # the old path: not flat
    assert growth["lazy", 30000] < 3 + growth["lazy", 3000], growth
