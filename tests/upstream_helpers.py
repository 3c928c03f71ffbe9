"""Upstream's side, written out here and not through tinyemo's code: its checkpoint layout, its
anchor and scoring formulas (projector_mps/src/model/llm.py `get_embds`, utils.py
`compute_top_accuracy`), tokenizers that behave like the paper's LLMs', and folders and hub
caches holding them."""
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn
from torch.nn import functional as F

from tinyemo.taxonomy import EKMAN6

PAPER_WIDTHS = (1280, 1536, 2048, 2560)  # OpenELM-270M, OpenELM-450M, TinyLlama, Phi-2


class AlignmentMLP(nn.Module):
    """Upstream's projector module: its state dict is what the released .bin files hold."""

    def __init__(self, input_dim: int, hidden_dim: int):
        super().__init__()
        self.model = nn.Sequential(nn.Linear(input_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.GELU(),
                                   nn.Dropout(0.2), nn.Linear(hidden_dim, hidden_dim))

    def forward(self, x):
        return self.model(x.float())


def write_checkpoint(path: Path, width: int, seed: int = 0, in_dim: int = 768) -> AlignmentMLP:
    """A random upstream projector (with BatchNorm running statistics) saved as upstream saves it."""
    torch.manual_seed(seed)
    module = AlignmentMLP(in_dim, width)
    norm = module.model[1]
    norm.running_mean.normal_(0.0, 0.2)
    norm.running_var.uniform_(0.5, 2.0)
    norm.num_batches_tracked.fill_(1234)
    norm.weight.data.uniform_(0.5, 1.5)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(module.state_dict(), path)
    return module.eval()


def byte_tokenizer(adds_bos: bool):
    """A byte-level tokenizer: Phi-2-like (BOS `<|endoftext|>` defined, never added: the smoke
    profile's tiny tokenizer) or Llama-like (`<s>` added in front of every text, no pad token)."""
    from tokenizers import processors

    from tinyemo.models.llm import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    if adds_bos:
        tokenizer.add_special_tokens({"bos_token": "<s>"})
        tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
            single="<s> $A", special_tokens=[("<s>", tokenizer.bos_token_id)])
        tokenizer.pad_token = None
    return tokenizer


def embedding_folder(folder: Path, width: int, tokenizer, model_type: str = "phi",
                     key: str = "model.embed_tokens.weight", seed: int = 0) -> torch.Tensor:
    """A model folder holding a random input-embedding table (and only it) and the tokenizer."""
    folder.mkdir(parents=True, exist_ok=True)
    table = torch.randn(len(tokenizer), width, generator=torch.Generator().manual_seed(seed))
    save_file({key: table}, folder / "model.safetensors")
    if model_type in ("llama", "phi"):
        from transformers import AutoConfig

        AutoConfig.for_model(model_type, hidden_size=width, num_attention_heads=1,
                             vocab_size=len(tokenizer)).save_pretrained(folder)
    else:  # an architecture transformers does not know (OpenELM's modelling code is remote)
        (folder / "config.json").write_text(json.dumps({"model_type": model_type, "model_dim": width}))
    tokenizer.save_pretrained(folder)
    return table


def upstream_anchors(tokenizer, table: torch.Tensor, texts) -> torch.Tensor:
    """`LLM.get_embds`: padded batch, rows times the mask, mean over the padded length; then
    `Model.step`'s L2 normalisation."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    batch = tokenizer(list(texts), add_special_tokens=True, return_tensors="pt", padding=True,
                      truncation=True, max_length=512)
    embeds = F.embedding(batch["input_ids"], table) * batch["attention_mask"].unsqueeze(-1)
    return F.normalize(embeds.mean(dim=1), p=2, dim=1)


def upstream_predictions(module: AlignmentMLP, tokenizer, table, features, sentiments, texts=None):
    """`compute_top_accuracy`: (predicted label text per image, top-1). `texts` maps a label to
    the text it is anchored on (default: the label itself)."""
    texts = texts or {}
    with torch.no_grad():
        images = F.normalize(module.eval()(features), p=2, dim=1)
    unique = np.array(sorted(set(sentiments)))
    anchors = upstream_anchors(tokenizer, table, [texts.get(s, s) for s in unique])
    predicted, correct = [], 0
    for query, truth in zip(images, sentiments):
        distances = np.linalg.norm((anchors - query).numpy(), axis=1)
        label = unique[np.argsort(distances)[0]]
        predicted.append(str(label))
        correct += truth in label
    return predicted, correct / len(sentiments)


def feature_folder(root: Path, n_per_class: int = 10, labels=EKMAN6, seed: int = 0, width: int = 768):
    """`<root>/<label>/<i>.pt` fp16 CLIP-like vectors (norm about 19); returns (features, labels)."""
    g = torch.Generator().manual_seed(seed)
    centres = 19 * F.normalize(torch.randn(len(labels), width, generator=g), dim=1)
    rows, names = [], []
    for k, label in enumerate(labels):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            vector = (centres[k] + 0.5 * torch.randn(width, generator=g)).half()
            torch.save(vector, root / label / f"{i}.pt")
            rows.append(vector.float())
            names.append(label)
    return torch.stack(rows), names


def hub_file(cache: Path, repo: str, commit: str, filename: str, *, main: bool = False) -> Path:
    """The path of `filename` in a Hugging Face cache snapshot (`refs/main` set if `main`)."""
    repo_dir = cache / f"models--{repo.replace('/', '--')}"
    path = repo_dir / "snapshots" / commit / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    if main:
        (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
        (repo_dir / "refs" / "main").write_text(commit)
    return path


def mark_missing(cache: Path, repo: str, commit: str, filename: str) -> None:
    """What an online run leaves for a file the repository does not have (`.no_exist`)."""
    path = cache / f"models--{repo.replace('/', '--')}" / ".no_exist" / commit / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
