"""Pipeline parameters: profiles, deep merge, validation.

`params.yaml` is the file DVC reads. It is rendered from `profiles/default.yaml` deep-merged
with the overrides of the chosen profile (`profiles/<name>.yaml`), by
`tinyemo profile <name>`. Every section is validated here, so that a misspelled key, a wrong
type or an unknown model name stops a run before any work starts, with a message that names
the valid choices.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tinyemo.errors import TinyEmoError
from tinyemo.models import registry

PROFILES_DIR = Path("profiles")
PARAMS_FILE = Path("params.yaml")
PROFILE_NAMES = ("default", "smoke", "paper")


class ConfigError(ValueError, TinyEmoError):
    """Raised for malformed or invalid parameters; the message says how to fix them."""


class Section(BaseModel):
    # strict: a quoted "1600" or a YAML `yes` is not silently cast to a number; ints are
    # still accepted where a float is expected
    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True)


class BaseParams(Section):
    profile: Literal["default", "smoke", "paper"]
    seed: int = 0  # every random choice of every stage derives from this
    threads: int = Field(2, ge=1)  # torch intra-op threads
    vision_tower: str  # a name from tinyemo.models.registry.VISION_TOWERS
    llm: str  # a name from tinyemo.models.registry.LLMS

    @field_validator("vision_tower")
    @classmethod
    def _known_tower(cls, name: str) -> str:
        registry.vision_tower_spec(name)
        return name

    @field_validator("llm")
    @classmethod
    def _known_llm(cls, name: str) -> str:
        registry.llm_spec(name)
        return name


class AssetsParams(Section):
    sanity_image: str = "chelsea"  # a scikit-image sample photo for the vision check
    sanity_prompt: str = "The capital of France is"  # the LLM must continue it


class PlantedBiasParams(Section):
    attribute: str  # a scene attribute irrelevant to the emotion rules (see tinyemo.scenes)
    value: str  # the attribute value that is made to co-occur with `emotion`
    emotion: str  # a Mikels-8 emotion
    strength: float = Field(0.9, ge=0.0, le=1.0)  # P(value | emotion) in the training split

    @model_validator(mode="after")
    def _known_names(self) -> "PlantedBiasParams":
        from tinyemo.scenes.planted_bias import check_biases

        check_biases([self.model_dump()])
        return self


class SynthesizeParams(Section):
    n_train: int = Field(ge=8)
    n_val: int = Field(ge=8)
    n_test: int = Field(ge=8)
    image_size: int = Field(224, ge=32)
    label_noise: float = Field(0.1, ge=0.0, le=0.5)  # share of labels re-drawn at random
    planted_biases: list[PlantedBiasParams] = []
    teacher: str = "rule"  # "rule" or an LLM name from the registry
    n_figure_samples: int = Field(8, ge=1)

    @field_validator("teacher")
    @classmethod
    def _known_teacher(cls, name: str) -> str:
        if name != "rule" and name not in registry.LLMS:
            raise ValueError(f"unknown teacher {name!r}; valid: rule, {', '.join(sorted(registry.LLMS))}")
        return name

    @field_validator("planted_biases")
    @classmethod
    def _distinct_biases(cls, biases: list[PlantedBiasParams]) -> list[PlantedBiasParams]:
        from tinyemo.scenes.planted_bias import check_biases

        check_biases([b.model_dump() for b in biases])
        return biases


class DatasetRoot(Section):
    root: str  # the dataset's folder, relative to the repository (a DVC dependency)

    @field_validator("root")
    @classmethod
    def _relative(cls, root: str) -> str:
        if Path(root).is_absolute() or ".." in Path(root).parts:
            raise ValueError(f"dataset roots are paths inside the repository (data/raw/NAME), got {root!r}")
        return root


class EncodeParams(Section):
    datasets: dict[str, DatasetRoot]  # name (tinyemo.datasets) -> its root; one encode stage each
    batch_size: int = Field(32, ge=1)  # images per forward pass
    num_workers: int = Field(0, ge=0)  # DataLoader processes that open and preprocess images
    shard_size: int = Field(10_000, ge=1)  # images per shard: the most rows held in memory
    dtype: Literal["fp32", "fp16", "bf16"] = "fp32"  # autocast dtype; pooled features stored in it
    device: str = "auto"  # auto (cuda if available, else cpu) | cpu | cuda | cuda:N
    patches: list[str] = []  # datasets whose patch grids are kept (the MM-LLM's input)
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)  # precomputed Emotion6: val carved from train

    @field_validator("datasets")
    @classmethod
    def _names(cls, datasets: dict) -> dict:
        import re

        bad = [name for name in datasets if not re.match(r"^[a-z0-9][a-z0-9_-]*$", name)]
        if bad:
            raise ValueError(f"dataset names {bad} must be lower-case letters, digits, - and _")
        if not datasets:
            raise ValueError("list at least one dataset to encode")
        return datasets

    @field_validator("device")
    @classmethod
    def _device(cls, device: str) -> str:
        import re

        if not re.match(r"^(auto|cpu|cuda(:\d+)?|mps)$", device):
            raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps, got {device!r}")
        return device

    @model_validator(mode="after")
    def _patches_of_listed(self) -> "EncodeParams":
        unknown = sorted(set(self.patches) - set(self.datasets))
        if unknown:
            raise ValueError(f"patches lists {unknown}, not in datasets ({', '.join(self.datasets)}); add or remove them")
        return self


SECTION_SCHEMAS: dict[str, type[Section]] = {
    "base": BaseParams,
    "assets": AssetsParams,
    "synthesize": SynthesizeParams,
    "encode": EncodeParams,
}


def register_section(name: str, schema: type[Section]) -> None:
    """Declare the schema of one params.yaml section (each stage's module calls this)."""
    SECTION_SCHEMAS[name] = schema


def deep_merge(base: dict, override: dict) -> dict:
    """Merge `override` into a copy of `base`, recursing into nested dicts (lists replace)."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _read_yaml(path: Path) -> dict:
    if not path.exists():
        raise ConfigError(f"{path} does not exist. Run `tinyemo profile default` to create it.")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of sections, got {type(data).__name__}.")
    return data


def render_profile(name: str, profiles_dir: Path = PROFILES_DIR) -> dict:
    """The full parameter tree of a profile: default.yaml deep-merged with <name>.yaml."""
    if name not in PROFILE_NAMES:
        raise ConfigError(f"unknown profile {name!r}; valid profiles: {', '.join(PROFILE_NAMES)}")
    tree = _read_yaml(profiles_dir / "default.yaml")
    if name != "default":
        tree = deep_merge(tree, _read_yaml(profiles_dir / f"{name}.yaml"))
    validate(tree)
    return tree


def write_params(name: str, path: Path = PARAMS_FILE, profiles_dir: Path = PROFILES_DIR) -> dict:
    """Render a profile into params.yaml (the file DVC tracks)."""
    tree = render_profile(name, profiles_dir)
    header = (
        f"# Rendered from profiles/ by `tinyemo profile {name}`: edit profiles/*.yaml, not this file.\n"
    )
    path.write_text(header + yaml.safe_dump(tree, sort_keys=False))
    return tree


def _schema_of(section: str) -> type[Section]:
    _import_stage_modules()
    if section not in SECTION_SCHEMAS:
        raise ConfigError(
            f"unknown section {section!r} in the parameters; valid sections: "
            f"{', '.join(sorted(SECTION_SCHEMAS))}"
        )
    return SECTION_SCHEMAS[section]


def _format_error(section: str, err: ValidationError) -> str:
    lines = []
    for item in err.errors():
        where = ".".join(str(p) for p in (section, *item["loc"]))
        if item["type"] == "extra_forbidden":
            valid = ", ".join(_schema_of(section).model_fields) or "(none)"
            lines.append(f"{where}: unknown key (misspelled?); valid keys of {section}: {valid}")
        else:
            hint = ""
            if item["type"] in ("int_type", "float_type") and isinstance(item.get("input"), (str, bool)):
                hint = "; write a plain number, unquoted (floats with a dot: 1.0e-3, not 1e-3)"
            lines.append(f"{where}: {item['msg']} (got {item.get('input')!r}){hint}")
    return "invalid parameters:\n  " + "\n  ".join(lines)


def validate_section(section: str, values: Any) -> Section:
    schema = _schema_of(section)
    if not isinstance(values, dict):
        raise ConfigError(f"section {section!r} must be a mapping, got {values!r}")
    try:
        return schema.model_validate(values)
    except ValidationError as err:
        raise ConfigError(_format_error(section, err)) from None


def validate(tree: dict) -> dict[str, Section]:
    """Validate every section of a parameter tree; return the typed sections."""
    missing = [s for s in ("base",) if s not in tree]
    if missing:
        raise ConfigError(f"the parameters lack the section(s) {missing}")
    return {name: validate_section(name, values) for name, values in tree.items()}


def load_params(path: Path = PARAMS_FILE) -> dict[str, Section]:
    """Read and validate params.yaml."""
    return validate(_read_yaml(Path(path)))


def _import_stage_modules() -> None:
    """Stage modules register their own sections; import them so every schema is known."""
    import importlib

    for module in STAGE_CONFIG_MODULES:
        importlib.import_module(module)


# Modules that call register_section() for the sections of later stages.
STAGE_CONFIG_MODULES: list[str] = ["tinyemo.projector.params", "tinyemo.mmllm.params", "tinyemo.bias.params"]
