"""The paper's LLMs at their real shapes with fewer layers, written as local model folders.

For each hub LLM of the registry (OpenELM-270M/450M-Instruct, TinyLlama-1.1B-Chat, Phi-2),
`write_reduced_llm` writes a folder that `tinyemo.models.llm.load_llm` reads like a
downloaded one: the published config.json (`registry.published_llm`) with only the number
of layers changed, seeded random weights in `model.safetensors` (in the published storage
dtype), and a tokenizer with the real model's vocabulary size, special tokens and ids, and
beginning-of-sequence behaviour. Every width, head count, vocabulary and RoPE setting is
the real one, so what fails on the real model for its shapes fails here, on a CPU, in
seconds.

OpenELM's per-layer widths follow from (first, last) multiplier pairs spread over the
layers, so a 2-layer OpenELM has the real model's narrowest and widest layer, a 1-layer one
its narrowest.

The tokenizers are built offline with the `tokenizers` library; their vocabularies are the
real size but not the real merges:

- Llama-2's (OpenELM, TinyLlama): 32000 entries, `<unk>` 0, `<s>` 1, `</s>` 2, the 256
  byte tokens `<0x00>`..`<0xFF>` at 3..258 as in Llama-2, then `▁` and the printable ASCII
  characters; spaces become `▁`, a `▁` starts the text, characters outside the vocabulary
  fall back to their bytes, and `<s>` is added in front. The rest of the 32000 entries are
  fillers that no text encodes to.
- Phi-2's (CodeGen's byte-level BPE): the 256 byte characters of GPT-2's byte-level
  alphabet at ids 0..255 (GPT-2's order), fillers up to 50255, `<|endoftext|>` at 50256
  (beginning, end and unknown token), no token added in front, then 38 whitespace runs
  (2 to 31 spaces, 2 to 9 tabs) as added tokens: 50295 tokens, while the embedding table
  has 51200 rows.

TinyLlama's own chat template is saved with its tokenizer; the other two have none, as on
the hub, and get the loader's plain USER/ASSISTANT template.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import torch

from tinyemo.models import registry

LAYER_KEYS = ("num_transformer_layers", "num_hidden_layers")  # OpenELM's name, transformers'


def reduced_config(name: str, layers: int) -> dict:
    """The published config.json of `name` with `layers` layers."""
    if layers < 1:
        raise ValueError(f"a model needs at least one layer, not {layers}")
    config = dict(registry.published_llm(name)["config"])
    config[next(key for key in LAYER_KEYS if key in config)] = layers
    return config


def _fillers(vocab: dict[str, int], length: int) -> None:
    while len(vocab) < length:
        vocab[f"<filler-{len(vocab)}>"] = len(vocab)


def _fast(backend, facts: dict):
    from transformers import PreTrainedTokenizerFast

    special = {role: facts[role][0] for role in ("unk", "bos", "eos")}
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token=special["unk"],
                                        bos_token=special["bos"], eos_token=special["eos"])
    if facts["chat_template"]:
        tokenizer.chat_template = facts["chat_template"]
    return tokenizer


def llama2_tokenizer(facts: dict):
    """Llama-2's special tokens, ids, byte fallback and `<s>` in front (see the module)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, processors

    vocab = {facts[role][0]: facts[role][1] for role in ("unk", "bos", "eos")}
    for byte in range(256):
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    for char in "▁" + "".join(chr(c) for c in range(33, 127)):
        vocab[char] = len(vocab)
    _fillers(vocab, facts["length"])
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=facts["unk"][0],
                                   byte_fallback=True))
    backend.normalizer = normalizers.Sequence([normalizers.Prepend("▁"),
                                               normalizers.Replace(" ", "▁")])
    backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                         decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    bos = facts["bos"][0]
    if facts["adds_bos"]:
        backend.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, facts["bos"][1])])
    backend.add_special_tokens([facts[role][0] for role in ("unk", "bos", "eos")])
    return _fast(backend, facts)


def codegen_tokenizer(facts: dict):
    """CodeGen's byte-level BPE with Phi-2's ids and whitespace runs (see the module)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    vocab = {char: i for i, char in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    end, end_id = facts["eos"]
    _fillers(vocab, end_id)
    vocab[end] = end_id
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([end])
    runs = [" " * n for n in range(31, 1, -1)] + ["\t" * n for n in range(9, 1, -1)]
    backend.add_tokens([AddedToken(run, normalized=False) for run in runs])
    if backend.get_vocab_size() != facts["length"]:
        raise ValueError(f"the CodeGen tokenizer has {backend.get_vocab_size()} tokens, "
                         f"Phi-2's has {facts['length']}")
    return _fast(backend, facts)


TOKENIZERS = {"llama-2": llama2_tokenizer, "codegen": codegen_tokenizer}


def reduced_tokenizer(name: str):
    facts = registry.published_llm(name)["tokenizer"]
    return TOKENIZERS[facts["kind"]](facts)


def write_reduced_llm(name: str, folder: Path, layers: int = 1, seed: int = 0) -> Path:
    """Write the folder of `name` with `layers` layers and weights drawn with `seed`
    (replacing `folder`; it appears only once complete)."""
    from tinyemo.models.llm import build_llm, save_llm

    config = reduced_config(name, layers)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_llm(config)
    dtype = getattr(torch, config.get("torch_dtype", "float32"))
    folder = Path(folder)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    save_llm(model, reduced_tokenizer(name), partial, dtype=dtype)
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return folder
