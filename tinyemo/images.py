"""Reading image files given on the command line, with errors that name the file.

`read_image(path)` returns an RGB PIL image or raises `UnreadableImageError` saying which
file failed and why (not an image, truncated, too large to decode safely). `ImageFiles`
is a list of paths that reads each image only when a batch asks for it, so
`tinyemo.models.vision.encode_images` never holds more than one batch of decoded images.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from tinyemo.errors import TinyEmoError


class UnreadableImageError(ValueError, TinyEmoError):
    """An input file that is not an image PIL can read."""


def read_image(path: Path) -> Image.Image:
    path = Path(path)
    if not path.is_file():
        raise UnreadableImageError(f"{path}: no such file")
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except Image.DecompressionBombError:
        raise UnreadableImageError(
            f"{path} has more pixels than PIL decodes safely ({2 * Image.MAX_IMAGE_PIXELS:,}, "
            "its guard against decompression bombs); resize it first"
        ) from None
    except (UnidentifiedImageError, OSError) as err:
        raise UnreadableImageError(f"{path} is not a readable image ({err}); give PNG or JPEG files") from None


class ImageFiles(Sequence):
    """Image paths that are read (`read_image`) when indexed or sliced."""

    def __init__(self, paths: Sequence[Path]):
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [read_image(path) for path in self.paths[index]]
        return read_image(self.paths[index])
