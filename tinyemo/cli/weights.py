"""Before a command loads a vision tower: are its pretrained weights at hand?

open_clip fetches CLIP weights from the Hugging Face hub on first use. Offline
(`HF_HUB_OFFLINE=1`, the project's default) a missing file would otherwise cost a minute of
retries and end in open_clip's "Failed to download weights for tag 'openai'". `check` fails
at once instead, naming the weights, the command that fetches them and the folder they go in.
"""
from __future__ import annotations

from tinyemo.errors import CommandError
from tinyemo.models import registry


def _hub_files(spec: registry.VisionTowerSpec) -> tuple[str, tuple[str, ...]] | None:
    """(hub repository, candidate file names) of an open_clip tower's weights, or None."""
    if spec.family != "open_clip":
        return None
    import open_clip
    from open_clip import pretrained

    repo = open_clip.get_pretrained_cfg(spec.architecture, spec.pretrained).get("hf_hub", "").strip("/")
    if not repo:
        return None
    return repo, (pretrained.HF_SAFE_WEIGHTS_NAME, pretrained.HF_WEIGHTS_NAME)


def check(tower_name: str) -> None:
    """Raise CommandError when `tower_name` needs hub weights that are neither cached nor
    downloadable (offline); do nothing for towers whose weights ship with the project."""
    from huggingface_hub import constants, try_to_load_from_cache

    spec = registry.vision_tower_spec(tower_name)
    files = _hub_files(spec)
    if files is None or not constants.HF_HUB_OFFLINE:
        return
    repo, names = files
    if any(isinstance(try_to_load_from_cache(repo, name), str) for name in names):
        return
    folder = f"{constants.HF_HUB_CACHE}/models--{repo.replace('/', '--')}"
    raise CommandError(
        f"this projector reads features of {tower_name} ({spec.source}, '{spec.pretrained}' "
        f"weights), which are not in the Hugging Face cache, and HF_HUB_OFFLINE=1 forbids "
        f"downloading them. Online, fetch them once with `HF_HUB_OFFLINE=0 hf download {repo} "
        f"{names[0]}`; offline, copy that cache folder ({folder}) from a machine that has it. "
        "Or classify precomputed feature files (.pt) instead of images."
    )
