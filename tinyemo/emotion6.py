"""Real features: the TinyEmo repository's Emotion6 CLIP ViT-L/14 embeddings.

Layout: `<data dir>/Emotion6/images/<split>/<emotion>/<id>.pt`, one fp16 [768] tensor per
image. The data directory is, in order:

1. the folder named by the environment variable `TINYEMO_DATA_DIR`;
2. a cache (`$XDG_CACHE_HOME/tinyemo` or `~/.cache/tinyemo`) filled once by downloading the
   public repository at a pinned commit and extracting only the feature folders.

Upstream ships `test/` and an identical `validation/`; model selection on the test set is one
of its defects. Here validation is carved from `train/` (seeded, stratified) and `test/` is
used only when present, only for final reporting; `validation/` is never read.

The pipeline does not read that folder directly: stage `fetch-emotion6` copies it into
`data/raw/emotion6-clip/` (a versioned folder like every other dataset root), recording a
SHA-256 of the copied files; stage `encode` recognises a root of precomputed features
(`is_feature_root`) and stores them as a feature set instead of running a vision tower.
The download tarball has no published checksum (GitHub builds it on request), so the
check is on the extracted files.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path, PurePosixPath

import torch

from tinyemo import paths
from tinyemo.errors import TinyEmoError
from tinyemo.feature_store import FeatureSet
from tinyemo.taxonomy import EKMAN6

ENV_VAR = "TINYEMO_DATA_DIR"
UPSTREAM_REPO = "ggcr/TinyEmo"
UPSTREAM_COMMIT = "1436d40fd4948b3999e3a45b22751ec6d3eeb722"
UPSTREAM_URL = f"https://codeload.github.com/{UPSTREAM_REPO}/tar.gz/{UPSTREAM_COMMIT}"
UPSTREAM_DIR = "projector_mps/sample_data/Emotion6"  # holds Emotion6/images/<split>/
IMAGES = Path("Emotion6") / "images"
USED_SPLITS = ("train", "test")  # upstream's validation/ duplicates test/: never used
UPSTREAM_TOWER = "clip-vit-l-14"  # the registry name of the tower upstream's features come from
FETCHED = paths.DATA / "raw" / "emotion6-clip"  # stage `fetch-emotion6` copies the features here
SOURCE_FILE = "SOURCE.json"  # where the copy came from and the checksum of its files


class DataUnavailableError(FileNotFoundError, TinyEmoError):
    """The Emotion6 features cannot be found or fetched; the message says how to provide them."""


class FeatureFolderError(ValueError, TinyEmoError):
    """A malformed `<emotion>/<id>.pt` folder; the message names the offending path."""


HOW_TO_PROVIDE = (
    f"set {ENV_VAR} to a folder holding Emotion6/images/train/<emotion>/<id>.pt "
    f"(the layout of {UPSTREAM_DIR} in github.com/{UPSTREAM_REPO}), or go online so that it "
    "can be downloaded once"
)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tinyemo" / f"emotion6-{UPSTREAM_COMMIT[:12]}"


def open_url(url: str):
    """A binary stream of `url` (tests replace this to simulate being offline)."""
    return urllib.request.urlopen(url, timeout=60)


def download(target: Path) -> Path:
    """Fetch the pinned repository tarball and extract only the feature folders into `target`.

    Extraction goes to a temporary sibling folder that is renamed at the end, so an
    interrupted download never leaves a half-filled cache behind.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        count = 0
        with open_url(UPSTREAM_URL) as stream, tarfile.open(fileobj=stream, mode="r|gz") as tar:
            for member in tar:
                relative = _wanted(member)
                if relative is None:
                    continue
                out = tmp / relative
                out.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                count += 1
        if count == 0:
            raise DataUnavailableError(f"{UPSTREAM_URL} holds no files under {UPSTREAM_DIR}/{IMAGES}")
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _wanted(member: tarfile.TarInfo) -> PurePosixPath | None:
    """The path of a tarball member below the data dir, if it is a feature file we use."""
    parts = PurePosixPath(member.name).parts[1:]  # drop the "TinyEmo-<commit>/" prefix
    prefix = PurePosixPath(UPSTREAM_DIR).parts + IMAGES.parts
    if not member.isfile() or parts[: len(prefix)] != prefix or ".." in parts:
        return None
    below = parts[len(prefix) - len(IMAGES.parts):]
    if len(below) != 5 or below[2] not in USED_SPLITS:  # Emotion6/images/<split>/<emotion>/<id>.pt
        return None
    return PurePosixPath(*below)


def locate_emotion6() -> Path:
    """The directory holding `Emotion6/images/` (env var, else the download cache)."""
    if os.environ.get(ENV_VAR):
        root = Path(os.environ[ENV_VAR])
        if not (root / IMAGES / "train").is_dir():
            raise DataUnavailableError(
                f"{ENV_VAR}={root} has no {IMAGES}/train/ folder; {HOW_TO_PROVIDE}"
            )
        return root
    cached = cache_dir()
    if (cached / IMAGES / "train").is_dir():
        return cached
    try:
        return download(cached)
    except (OSError, tarfile.TarError) as err:
        raise DataUnavailableError(
            f"the Emotion6 features are not available: {ENV_VAR} is not set and downloading "
            f"{UPSTREAM_URL} failed ({err}). To fix it, {HOW_TO_PROVIDE}."
        ) from None


def describe_source(root: Path) -> str:
    """Where `root` came from, in words that hold on any machine (no absolute path)."""
    if os.environ.get(ENV_VAR) and Path(os.environ[ENV_VAR]) == Path(root):
        return f"${ENV_VAR} (folder {Path(root).name}/)"
    return f"download cache of github.com/{UPSTREAM_REPO} at {UPSTREAM_COMMIT[:12]}"


def split_folders(root: Path) -> dict[str, Path]:
    """{"train": ..., ["test": ...]} below `root/Emotion6/images` (validation/ is ignored)."""
    images = Path(root) / IMAGES
    return {split: images / split for split in USED_SPLITS if (images / split).is_dir()}


def _read_vector(path: Path) -> torch.Tensor:
    try:
        value = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise FeatureFolderError(
            f"{path} is not a readable tensor file ({type(err).__name__}); replace or delete it"
        ) from None
    if not isinstance(value, torch.Tensor) or value.squeeze(0).ndim != 1:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise FeatureFolderError(f"{path} must hold a 1-D feature vector, got {shape}")
    value = value.squeeze(0).float()
    if not torch.isfinite(value).all():
        raise FeatureFolderError(f"{path} holds non-finite values")
    return value


def _sort_key(path: Path):
    return (0, int(path.stem), "") if path.stem.isdigit() else (1, 0, path.stem)


def read_feature_folder(folder: Path, label_names: tuple[str, ...] = EKMAN6,
                        folder_labels: dict[str, str] | None = None) -> FeatureSet:
    """Read `<folder>/<emotion>/<id>.pt` into a FeatureSet (ids are `<emotion>/<id>`);
    `folder_labels` maps folder names that are spelled otherwise to their label."""
    folder = Path(folder)
    folder_labels = folder_labels or {}
    if not folder.is_dir():
        raise FeatureFolderError(f"{folder} is not a folder of <emotion>/<id>.pt files")
    label_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [p.name for p in label_dirs if folder_labels.get(p.name, p.name) not in label_names]
    if unknown:
        raise FeatureFolderError(
            f"{folder} has label folder(s) {unknown} that are not labels of this dataset; "
            f"valid labels: {', '.join(label_names)}"
        )
    ids, labels, vectors = [], [], []
    for label_dir in label_dirs:
        for path in sorted(label_dir.glob("*.pt"), key=_sort_key):
            vector = _read_vector(path)
            if vectors and vector.shape != vectors[0].shape:
                raise FeatureFolderError(
                    f"{path} has width {vector.shape[0]} but the files before it have width "
                    f"{vectors[0].shape[0]}; all features must come from the same encoder"
                )
            ids.append(f"{label_dir.name}/{path.stem}")
            labels.append(folder_labels.get(label_dir.name, label_dir.name))
            vectors.append(vector)
    if not vectors:
        raise FeatureFolderError(f"{folder} holds no <emotion>/<id>.pt files")
    return FeatureSet(ids=ids, pooled=torch.stack(vectors), labels=labels,
                      label_names=label_names, meta={"source": folder.name})


def carve_validation(features: FeatureSet, fraction: float, seed: int) -> tuple[FeatureSet, FeatureSet]:
    """(train, val): `fraction` of each label's rows to val, by the datasets' one seeded,
    stratified split (`tinyemo.datasets.stratified_split`); rows keep their order."""
    from tinyemo.datasets import stratified_split

    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the validation fraction must lie in (0, 1), got {fraction}")
    split_of = stratified_split(features.ids, features.labels, {"val": fraction}, seed)
    rows = {name: [i for i, id_ in enumerate(features.ids) if split_of[id_] == name] for name in ("train", "val")}
    return features.subset(rows["train"]), features.subset(rows["val"])


def precomputed_splits(root: Path, val_fraction: float, seed: int) -> dict[str, FeatureSet]:
    """{"train", "val"[, "test"]} from a root of upstream's `.pt` features (val carved from train)."""
    folders = split_folders(root)
    train, val = carve_validation(read_feature_folder(folders["train"]), val_fraction, seed)
    sets = {"train": train, "val": val}
    if "test" in folders:
        sets["test"] = read_feature_folder(folders["test"])
    for split, features in sets.items():
        features.meta.update(dataset="emotion6", split=split, vision_tower=UPSTREAM_TOWER,
                             encoded_by=f"github.com/{UPSTREAM_REPO} (precomputed)")
    return sets


def is_feature_root(root: Path) -> bool:
    """Whether `root` holds upstream's precomputed features rather than images."""
    train = Path(root) / IMAGES / "train"
    return train.is_dir() and any(train.glob("*/*.pt"))


def files_checksum(folder: Path) -> tuple[int, str]:
    """(number of files, SHA-256 over their sorted relative paths and contents) below `folder`."""
    digest = hashlib.sha256()
    files = sorted(p for p in Path(folder).rglob("*.pt") if p.is_file())
    for path in files:
        digest.update(f"{path.relative_to(folder).as_posix()}\n".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return len(files), digest.hexdigest()


def fetch(target: Path = FETCHED) -> dict:
    """Copy the located features (train/, and test/ when present) into `target`; return its SOURCE.json.

    The copy goes to a temporary sibling renamed at the end: an interrupted fetch leaves nothing
    that looks complete.
    """
    root = locate_emotion6()
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for split, folder in split_folders(root).items():
            shutil.copytree(folder, tmp / IMAGES / split)
        n_files, checksum = files_checksum(tmp / IMAGES)
        source = {"source": describe_source(root), "upstream": f"github.com/{UPSTREAM_REPO}",
                  "commit": UPSTREAM_COMMIT, "splits": sorted(split_folders(tmp)),
                  "n_files": n_files, "files_sha256": checksum}
        (tmp / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n")
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return source


def read_source(root: Path) -> dict:
    """SOURCE.json of a fetched copy, or the checksum of a folder that has none."""
    path = Path(root) / SOURCE_FILE
    if path.exists():
        return json.loads(path.read_text())
    n_files, checksum = files_checksum(Path(root) / IMAGES)
    return {"source": Path(root).name, "n_files": n_files, "files_sha256": checksum}
