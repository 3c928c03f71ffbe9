"""EmoScenes (this project's synthetic dataset, written by the `synthesize` stage), read through
the same registry as the real datasets: `scenes.jsonl` gives each image's id, split and
Mikels-8 label (after label noise: the label every model trains and is scored on).

Its splits are drawn when the data is generated, so the split seed has no effect here.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from tinyemo.datasets.base import Dataset, ImageRecord, is_image_file

FILES = """<root>/scenes.jsonl              one scene record per line (id, split, image, label, ...)
<root>/images/<split>/<id>.png
  written by `tinyemo stage synthesize` (default root: data/emoscenes)"""


def list_records(spec: Dataset, root: Path):
    from tinyemo.scenes.records import MissingDataError, load_scene_records

    try:
        scenes = load_scene_records(root)
    except MissingDataError as err:
        raise spec.layout_error(str(err)) from None
    skipped: Counter = Counter()
    records = []
    for scene in scenes:
        path = scene.image_path(root)
        if is_image_file(path):
            records.append(ImageRecord(scene.id, path, scene.label, scene.split))
        else:
            skipped["listed image missing"] += 1
    return records, skipped


DATASET = Dataset("emoscenes", "mikels8", FILES, list_records)
