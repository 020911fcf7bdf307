"""The view store: the image pipeline's views, per picture, on disk ($VLMLAB_CACHE/views.sqlite,
`vision.view_store_mb`; images.py's docstring says what a key holds and why a run with it equals a run without it).

Pictures reach it undecoded: `undecoded(ds)` leaves a dataset's image column as datasets' {"bytes", "path"} values,
the store keys on the file's bytes, and only a miss decodes them (`decode`, by datasets itself, exactly as a decoded
column would). hits / misses count pictures.
"""
from __future__ import annotations

import hashlib
import io

from PIL import ExifTags, Image

from vlmlab.store import TensorStore


def image_bytes(image: dict) -> bytes:
    """The file bytes of a datasets Image value left undecoded ({"bytes", "path"}; a path-only value is read)."""
    if image.get("bytes") is not None:
        return image["bytes"]
    if image.get("path") is None:
        raise ValueError(f"an image needs 'bytes' or 'path'; got {image}")
    with open(image["path"], "rb") as f:
        return f.read()


def picture_size(image: Image.Image | dict) -> tuple[int, int]:
    """(W, H) of a picture, decoded or not (an undecoded one from its header, turned as its EXIF orientation says,
    as `decode` turns it)."""
    if not isinstance(image, dict):
        return image.size
    with Image.open(io.BytesIO(image_bytes(image))) as im:
        w, h = im.size
        turned = im.getexif().get(ExifTags.Base.Orientation) in (5, 6, 7, 8)  # the transposes that swap the sides
    return (h, w) if turned else (w, h)


def decode(image: dict, data: bytes | None = None) -> Image.Image:
    """An undecoded datasets Image value -> PIL, decoded by datasets itself (so exactly as a decoded column is)."""
    import datasets

    return datasets.Image().decode_example({"bytes": image_bytes(image) if data is None else data, "path": None})


def undecoded(ds):
    """A datasets.Dataset with its "image" column left undecoded (the view store keys on the file's bytes);
    other datasets, or an image column that is not a datasets Image, are returned as they are."""
    import datasets

    feature = ds.features.get("image") if isinstance(ds, datasets.Dataset) else None
    if isinstance(feature, datasets.Image) and feature.decode:
        return ds.cast_column("image", datasets.Image(decode=False))
    return ds


class ViewStore(TensorStore):
    """The image pipeline's views, per picture, on disk ($VLMLAB_CACHE/views.sqlite; see the module docstring).
    hits / misses count pictures."""

    def __init__(self, path, limit_mb: float):
        super().__init__(path, limit_mb, table="views")

    @staticmethod
    def keys(pipeline: bytes, split: bool, data: bytes, n: int) -> list[bytes]:
        """One key per view of a picture: its pipeline's settings, the split flag, the file's bytes, the view's place."""
        base = hashlib.blake2b(pipeline + (b"split" if split else b"whole") + data, digest_size=20).digest()
        return [base + bytes([k]) for k in range(n)]
