"""Build, save and load the MM-LLM.

An MM-LLM folder (`models/mmllm/<stage>/`) holds `mmllm.json` (which base LLM and vision
tower; the connector and its options, for the word-grounded connector its token ids, with
the words they spell in `connector_words`; the patch and image-token counts; the LoRA
settings) and `weights.safetensors`: the connector plus every LLM parameter that was trained (the LoRA adapters, or the whole
LLM after full fine-tuning). Loading rebuilds the base LLM by name and puts these weights
back, so a folder is small and never holds a pickle. `mmllm.json` is written last (each file
under a temporary name, then renamed), so a folder that holds it is a finished model
(`finished`); a trained stage records its training there too (`training`: the run's
fingerprint, loss log and measurements), which lets a rerun of the stage skip the training.
`load_mmllm` puts the model on the GPU when there is one, to run in the precision it was
trained in (`tinyemo.devices`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tinyemo import devices, paths
from tinyemo.errors import TinyEmoError
from tinyemo.mmllm.checkpoint import load_trainable
from tinyemo.mmllm.conversations import resolve, use_conversation
from tinyemo.mmllm.model import TinyLlava
from tinyemo.models import registry

MODEL_DIR = paths.MMLLM_MODELS  # models/mmllm/pretrain, models/mmllm/finetune
CONFIG_FILE = "mmllm.json"
WEIGHTS_FILE = "weights.safetensors"
TRAINING_FILE = "training.json"  # how the model trained: fingerprint, loss log, measurements
TRAINABLE = ("connector", "lora", "full")


class MissingModelError(FileNotFoundError, TinyEmoError):
    """An MM-LLM folder is missing or incomplete; the message names the stage that makes it."""


def build_mmllm(llm: str, vision_tower: str, n_patches: int, connector: str = "mlp2x_gelu",
                base_dir: Path = paths.BASE_MODELS,
                connector_options: dict | None = None, conversation: str = "auto", *,
                device: torch.device | str | None = None, dtype: torch.dtype | None = None):
    """(TinyLlava with a fresh connector, tokenizer rendering `conversation`) on the base LLM
    `llm`, on `device` in `dtype` (None: the CPU in float32). The LLM is built where it will
    run, so a big one never passes through CPU memory in float32."""
    from tinyemo.models.llm import load_llm

    model, tokenizer = load_llm(llm, base_dir=base_dir, device=device,
                                dtype=dtype or torch.float32)
    use_conversation(tokenizer, resolve(conversation, llm))
    patch_dim = registry.vision_tower_spec(vision_tower).patch_dim
    mmllm = TinyLlava(model, patch_dim, n_patches, connector, connector_options)
    return mmllm.to(device=device, dtype=dtype), tokenizer


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


def save_mmllm(folder: Path, model: TinyLlava, config: dict, training: dict | None = None) -> None:
    """Write the weights, the `training` record (`training.json`) when given, then
    `mmllm.json` (last: it marks the folder finished)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).unlink(missing_ok=True)  # unfinished until the new one is in place
    state = {name: p.detach().float().cpu().contiguous() for name, p in model.named_parameters()
             if p.requires_grad or name.startswith("connector.")}
    save_file(state, folder / f".{WEIGHTS_FILE}.tmp")
    os.replace(folder / f".{WEIGHTS_FILE}.tmp", folder / WEIGHTS_FILE)
    (folder / TRAINING_FILE).unlink(missing_ok=True)
    if training is not None:
        _write_json(folder / TRAINING_FILE, training)
    _write_json(folder / CONFIG_FILE, config)


def _write_json(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


def finished(folder: Path) -> dict | None:
    """The config of the finished model in `folder` (its weights and, written after them,
    `mmllm.json`), or None when there is none."""
    folder = Path(folder)
    if not (folder / CONFIG_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
        return None
    try:
        return json.loads((folder / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return None


def training_record(folder: Path) -> dict | None:
    """The `training` record saved with the finished model in `folder`, if any."""
    path = Path(folder) / TRAINING_FILE
    if finished(folder) is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_config(folder: Path, stage: str = "finetune") -> dict:
    folder = Path(folder)
    if not (folder / CONFIG_FILE).exists() or not (folder / WEIGHTS_FILE).exists():
        raise MissingModelError(
            f"no trained MM-LLM in {folder}; run `dvc repro {stage}` (or `tinyemo stage {stage}`)"
        )
    return json.loads((folder / CONFIG_FILE).read_text())


def load_mmllm(folder: Path, *, merge: bool = True, base_dir: Path = paths.BASE_MODELS,
               stage: str = "finetune", conversation: str | None = None,
               device: torch.device | str | None = "auto"):
    """(model in eval mode, tokenizer, config) of a saved MM-LLM; LoRA merged by default.
    The tokenizer renders the conversation template the model trained with, or
    `conversation` (e.g. the fine-tuning one for a pre-trained connector). The model goes to
    `device` ("auto": the GPU when there is one; None: the CPU, float32 weights, as training
    starts from) and runs in the precision it was trained in."""
    config = read_config(folder, stage)
    device = devices.inference_device() if device == "auto" else device
    model, tokenizer = build_mmllm(config["llm"], config["vision_tower"],
                                   config.get("n_patches", config["n_image_tokens"]),
                                   config["connector"], base_dir,
                                   config.get("connector_options"),
                                   conversation or config.get("conversation", "chat"),
                                   device=device)
    if config.get("lora"):
        lora = config["lora"]
        add_lora(model, lora["r"], lora["alpha"], lora["dropout"], lora["targets"])
    load_trainable(model, load_file(Path(folder) / WEIGHTS_FILE))
    if config.get("lora") and merge:
        model.llm = model.llm.merge_and_unload()
    model.requires_grad_(False)
    devices.place(model, config.get("mixed_precision", "no"), device or "cpu")
    return model.eval(), tokenizer, config
