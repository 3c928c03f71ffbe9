"""Build, save and load the MM-LLM.

An MM-LLM folder (`models/mmllm/<stage>/`) holds `mmllm.json` (which base LLM and vision
tower; the connector and its options, for the word-grounded connector its token ids, with
the words they spell in `connector_words`; the patch and image-token counts; the LoRA
settings) and `weights.safetensors`: the connector plus every LLM parameter that was trained (the LoRA adapters, or the whole
LLM after full fine-tuning). Loading rebuilds the base LLM by name and puts these weights
back, so a folder is small and never holds a pickle.
"""
from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from tinyemo import paths
from tinyemo.errors import TinyEmoError
from tinyemo.mmllm.checkpoint import load_trainable
from tinyemo.mmllm.conversations import resolve, use_conversation
from tinyemo.mmllm.model import TinyLlava
from tinyemo.models import registry

MODEL_DIR = paths.MODELS / "mmllm"  # models/mmllm/pretrain, models/mmllm/finetune
CONFIG_FILE = "mmllm.json"
WEIGHTS_FILE = "weights.safetensors"
TRAINABLE = ("connector", "lora", "full")


class MissingModelError(FileNotFoundError, TinyEmoError):
    """An MM-LLM folder is missing or incomplete; the message names the stage that makes it."""


def build_mmllm(llm: str, vision_tower: str, n_patches: int, connector: str = "mlp2x_gelu",
                base_dir: Path = paths.BASE_MODELS,
                connector_options: dict | None = None, conversation: str = "auto"):
    """(TinyLlava with a fresh connector, tokenizer rendering `conversation`) on the base LLM
    `llm`."""
    from tinyemo.models.llm import load_llm

    model, tokenizer = load_llm(llm, base_dir=base_dir)
    use_conversation(tokenizer, resolve(conversation, llm))
    patch_dim = registry.vision_tower_spec(vision_tower).patch_dim
    return TinyLlava(model, patch_dim, n_patches, connector, connector_options), tokenizer



def add_lora(model: TinyLlava, r: int, alpha: int, dropout: float, targets) -> None:
    """Wrap the LLM with peft LoRA adapters (targets: module names or "all-linear")."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets,
                        task_type="CAUSAL_LM")
    model.llm = get_peft_model(model.llm, config)


def set_trainable(model: TinyLlava, part: str) -> None:
    """Freeze everything but `part`: the connector, the connector + LoRA, or connector + LLM."""
    if part not in TRAINABLE:
        raise ValueError(f"unknown trainable part {part!r}; valid: {', '.join(TRAINABLE)}")
    for name, param in model.named_parameters():
        in_llm = name.startswith("llm.")
        param.requires_grad_(
            not in_llm or part == "full" or (part == "lora" and "lora_" in name)
        )


def save_mmllm(folder: Path, model: TinyLlava, config: dict) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {name: p.detach().clone().contiguous() for name, p in model.named_parameters()
             if p.requires_grad or name.startswith("connector.")}
    save_file(state, folder / WEIGHTS_FILE)
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")


def read_config(folder: Path, stage: str = "finetune") -> dict:
    folder = Path(folder)
    if not (folder / CONFIG_FILE).exists() or not (folder / WEIGHTS_FILE).exists():
        raise MissingModelError(
            f"no trained MM-LLM in {folder}; run `dvc repro {stage}` (or `tinyemo stage {stage}`)"
        )
    return json.loads((folder / CONFIG_FILE).read_text())


def load_mmllm(folder: Path, *, merge: bool = True, base_dir: Path = paths.BASE_MODELS,
               stage: str = "finetune", conversation: str | None = None):
    """(model in eval mode, tokenizer, config) of a saved MM-LLM; LoRA merged by default.
    The tokenizer renders the conversation template the model trained with, or
    `conversation` (e.g. the fine-tuning one for a pre-trained connector)."""
    config = read_config(folder, stage)
    model, tokenizer = build_mmllm(config["llm"], config["vision_tower"],
                                   config.get("n_patches", config["n_image_tokens"]),
                                   config["connector"], base_dir,
                                   config.get("connector_options"),
                                   conversation or config.get("conversation", "chat"))
    if config.get("lora"):
        lora = config["lora"]
        add_lora(model, lora["r"], lora["alpha"], lora["dropout"], lora["targets"])
    load_trainable(model, load_file(Path(folder) / WEIGHTS_FILE))
    if config.get("lora") and merge:
        model.llm = model.llm.merge_and_unload()
    model.requires_grad_(False)
    return model.eval(), tokenizer, config
