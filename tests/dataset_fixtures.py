"""Tiny dataset folders in each dataset's exact layout, with the check summary they must give.

`build(name, root)` writes a few 16x16 JPEGs per class (one colour per class, so features can
tell classes apart), plus the traps each layout has: a corrupt image everywhere, a stray
folder or file, Abstract's vote tie and a "10 votes beat 9" row (upstream compares the counts
as text), EmoSet's `image336/` copy (whose `image/` original is corrupt, so only the copy
reads), WEBEmo's misspelled folders. It returns the summary `tinyemo.datasets.check(name,
root)` must print with seed 0. Where a split is carved, the per-class counts follow from the
rounding rule (`carved_counts`); only the split of the one corrupt image depends on the
seeded shuffle, and it is read from the listing.
"""
from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

from PIL import Image

from tinyemo.taxonomy import EKMAN6, MIKELS8, PARROTT25, UNBIASED6

SIZE = 16  # pixels per side
PER_CLASS = 10  # images per class where the dataset has no split (test 2, val 1, train 7)
SPLITS = ("train", "val", "test")


def _colour(class_index: int, image_index: int) -> tuple[int, int, int]:
    return ((37 * class_index) % 256, (91 * class_index + 40) % 256, (11 * image_index) % 256)


def write_image(path: Path, class_index: int = 0, image_index: int = 0) -> Path:
    """A SIZE x SIZE image of one colour, in the format its suffix names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (SIZE, SIZE), _colour(class_index, image_index)).save(path)
    return path


def write_corrupt(path: Path) -> Path:
    """A JPEG cut in half: it opens as a name, but never decodes."""
    buffer = io.BytesIO()
    Image.new("RGB", (SIZE, SIZE), (128, 128, 128)).save(buffer, "JPEG")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return path


def carved_counts(n: int, test: bool) -> dict[str, int]:
    """Per class of n images: round(20 %) to test (when carved), then round(10 %) of the rest to
    val, train keeping at least one (the rule of tinyemo.datasets.splits)."""
    counts = {"test": min(int(0.2 * n + 0.5), n - 1) if test else 0}
    counts["val"] = min(int(0.1 * (n - counts["test"]) + 0.5), n - counts["test"] - 1)
    counts["train"] = n - counts["test"] - counts["val"]
    return counts


def summary(name: str, label_names, classes: Counter, splits: Counter, skipped: dict) -> dict:
    return {
        "dataset": name,
        "n_images": sum(classes.values()),
        "classes": {label: classes[label] for label in label_names},
        "splits": {split: splits[split] for split in SPLITS},
        "skipped": dict(sorted(skipped.items())),
    }


def _corrupt_split(name: str, root: Path, corrupt: Path) -> str:
    from tinyemo.datasets import dataset

    records, _ = dataset(name).records(root)
    return next(r.split for r in records if r.path == corrupt)


def _carved_summary(name: str, root: Path, label_names, listed: Counter, corrupt: tuple[Path, str],
                    skipped: dict, test: bool = True) -> dict:
    """The summary of a dataset whose splits are all carved (or val only, `test=False`)."""
    splits = Counter()
    for label in label_names:
        splits.update(carved_counts(listed[label], test))
    splits[_corrupt_split(name, root, corrupt[0])] -= 1
    classes = Counter(listed)
    classes[corrupt[1]] -= 1
    return summary(name, label_names, classes, splits, {**skipped, "unreadable image": 1})


def _class_folders(folder: Path, labels, per_class: int, pattern: str = "{label}/{i}.jpg") -> Counter:
    for c, label in enumerate(labels):
        for i in range(per_class):
            write_image(folder / pattern.format(label=label, i=i, sub=f"s{i % 2}"), c, i)
    return Counter({label: per_class for label in labels})


def build_emotion6(root: Path) -> dict:
    images = root / "images"
    listed = _class_folders(images, EKMAN6, PER_CLASS)
    corrupt = write_corrupt(images / "anger" / "corrupt.jpg")
    listed["anger"] += 1
    write_image(images / "thumbnails" / "1.jpg")  # a stray folder: not a class
    return _carved_summary("emotion6", root, EKMAN6, listed, (corrupt, "anger"),
                           {"unknown folder 'thumbnails'": 1})


def build_fi(root: Path) -> dict:
    listed = _class_folders(root, MIKELS8, PER_CLASS)
    corrupt = write_corrupt(root / "fear" / "corrupt.jpg")
    listed["fear"] += 1
    (root / "fear" / "notes.txt").write_text("not an image")
    return _carved_summary("fi", root, MIKELS8, listed, (corrupt, "fear"), {"not an image file": 1})


def build_unbiasedemo(root: Path) -> dict:
    images = root / "images"
    listed = _class_folders(images, UNBIASED6, PER_CLASS, "{label}/{sub}/{i}.jpg")
    corrupt = write_corrupt(images / "joy" / "s0" / "corrupt.jpg")
    listed["joy"] += 1
    return _carved_summary("unbiasedemo", root, UNBIASED6, listed, (corrupt, "joy"), {})


def build_artphoto(root: Path) -> dict:
    prefixes = {e: e for e in MIKELS8} | {"sadness": "sad"}
    for c, label in enumerate(MIKELS8):
        for i in range(PER_CLASS):
            write_image(root / f"{prefixes[label]}_{i}.jpg", c, i)
    listed = Counter({label: PER_CLASS for label in MIKELS8})
    corrupt = write_corrupt(root / "awe_corrupt.jpg")
    listed["awe"] += 1
    write_image(root / "boredom_1.jpg")  # a prefix that is no Mikels emotion
    (root / "readme.txt").write_text("not an image")
    return _carved_summary("artphoto", root, MIKELS8, listed, (corrupt, "awe"),
                           {"not an image file": 1, "unknown label prefix 'boredom'": 1})


def build_abstract(root: Path) -> dict:
    headers = ("Amusement", "Anger", "Awe", "Content", "Disgust", "Excitement", "Fear", "Sad")
    rows = []
    for c, label in enumerate(MIKELS8):
        for i in range(PER_CLASS):
            votes = [0] * 8
            votes[c], votes[(c + 1) % 8] = 10, 9  # "9" > "10" as text: upstream's wrong majority
            rows.append((write_image(root / f"abstract_{c}{i:02d}.jpg", c, i).name, votes))
    listed = Counter({label: PER_CLASS for label in MIKELS8})
    rows.append((write_image(root / "abstract_tie.jpg").name, [5, 5, 0, 0, 0, 0, 0, 1]))
    rows.append((write_corrupt(root / "abstract_corrupt.jpg").name, [0, 0, 0, 7, 0, 0, 0, 1]))
    listed["contentment"] += 1
    rows.append(("abstract_missing.jpg", [0, 3, 0, 0, 0, 0, 0, 0]))
    lines = ["''," + ",".join(f"'{h}'" for h in headers)]
    lines += [f"'{name}'," + ",".join(str(v) for v in votes) for name, votes in rows]
    (root / "ABSTRACT_groundTruth.csv").write_text("\n".join(lines) + "\n")
    return _carved_summary("abstract", root, MIKELS8, listed, (root / "abstract_corrupt.jpg", "contentment"),
                           {"listed image missing": 1, "tie in votes": 1})


def build_emotionroi(root: Path) -> dict:
    images = root / "images"
    lines = {"training.txt": [], "testing.txt": []}
    for c, label in enumerate(EKMAN6):
        for i in range(PER_CLASS):
            write_image(images / label / f"{i}.jpg", c, i)
            lines["training.txt" if i < 7 else "testing.txt"].append(f"{label}/{i}.jpg")
    write_corrupt(images / "sadness" / "corrupt.jpg")
    lines["testing.txt"].append("sadness/corrupt.jpg")
    lines["testing.txt"].append("sadness/missing.jpg")
    lines["training.txt"].append("boredom/1.jpg")
    split_dir = root / "training_testing_split"
    split_dir.mkdir(parents=True)
    for name, text in lines.items():
        (split_dir / name).write_text("\n".join(text) + "\n")
    per_class = carved_counts(7, test=False) | {"test": 3}  # 7 train lines, 3 test lines a class
    splits = Counter({split: per_class[split] * len(EKMAN6) for split in SPLITS})
    classes = Counter({label: PER_CLASS for label in EKMAN6})
    return summary("emotionroi", EKMAN6, classes, splits,
                   {"listed image missing": 1, "unknown emotion 'boredom'": 1, "unreadable image": 1})


def build_emoset(root: Path) -> dict:
    per_split = {"train": 3, "val": 1, "test": 1}
    entries = {split: [] for split in SPLITS}
    for c, label in enumerate(MIKELS8):
        i = 0
        for split, n in per_split.items():
            for _ in range(n):
                relative = f"image/{label}/{label}_{i:05d}.jpg"
                write_image(root / relative, c, i)
                entries[split].append([label, relative, f"annotation/{label}/{label}_{i:05d}.json"])
                i += 1
    # The 336-px copy is preferred: its original is corrupt, so only the copy decodes.
    copied = "image/awe/awe_00000.jpg"
    write_corrupt(root / copied)
    write_image(root / "image336" / "awe" / "awe_00000.jpg", 2, 0)
    write_corrupt(root / "image" / "fear" / "fear_00099.jpg")
    entries["test"].append(["fear", "image/fear/fear_00099.jpg"])
    entries["train"].append(["sadness", "image/sadness/sadness_09999.jpg"])  # listed, not there
    entries["train"].append(["boredom", "image/boredom/boredom_00000.jpg"])
    entries["val"].append(["anger"])  # malformed
    for split, records in entries.items():
        (root / f"{split}.json").write_text(json.dumps(records))
    classes = Counter({label: sum(per_split.values()) for label in MIKELS8})
    splits = Counter({split: n * len(MIKELS8) for split, n in per_split.items()})
    return summary("emoset", MIKELS8, classes, splits,
                   {"listed image missing": 1, "malformed record": 1, "unknown emotion 'boredom'": 1,
                    "unreadable image": 1})


def build_webemo(root: Path) -> dict:
    shipped = {"cheerfulness": "cheerfullness", "irritability": "irritabilty"}
    split_folders = {"train": ("train", 2), "val": ("validation", 1), "test": ("test", 1)}
    for c, label in enumerate(PARROTT25):
        for folder, n in split_folders.values():
            for i in range(n):
                write_image(root / folder / shipped.get(label, label) / f"{i}.jpg", c, i)
    write_corrupt(root / "test" / "rage" / "corrupt.jpg")
    write_image(root / "train" / "misc" / "1.jpg")
    classes = Counter({label: 4 for label in PARROTT25})
    splits = Counter({split: n * len(PARROTT25) for split, (_, n) in split_folders.items()})
    return summary("webemo", PARROTT25, classes, splits,
                   {"unknown folder 'misc'": 1, "unreadable image": 1})


def build_emoscenes(root: Path) -> dict:
    from tinyemo.scenes.dataset import build_records

    records = build_records({"train": 40, "val": 8, "test": 8}, seed=0, label_noise=0.0)
    with (root / "scenes.jsonl").open("w") as handle:
        for record in records:
            handle.write(json.dumps(record.to_dict()) + "\n")
    for i, record in enumerate(records):
        write_image(record.image_path(root), MIKELS8.index(record.label), i)
    corrupt, missing = records[0], records[1]
    write_corrupt(corrupt.image_path(root))
    missing.image_path(root).unlink()
    usable = records[2:]
    return summary("emoscenes", MIKELS8, Counter(r.label for r in usable), Counter(r.split for r in usable),
                   {"listed image missing": 1, "unreadable image": 1})


BUILDERS = {
    "emotion6": build_emotion6, "emotionroi": build_emotionroi, "emoset": build_emoset,
    "webemo": build_webemo, "fi": build_fi, "artphoto": build_artphoto, "abstract": build_abstract,
    "unbiasedemo": build_unbiasedemo, "emoscenes": build_emoscenes,
}


def build(name: str, root: Path) -> dict:
    """Write a tiny `name` dataset under `root` (created) and return its expected check summary."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    return BUILDERS[name](root)
