"""Turn a raw folder of raccoon photos into a clean stack of 64x64 training crops.

Layout read: photos anywhere under DIR (jpg, jpeg, png), and Pascal VOC boxes in a file of the same
stem (`annotations/raccoon-1.xml` for `photos/raccoon-1.jpg`), as in ../shared/data/raccoons.
"""

import hashlib
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png"}
BOX_MARGIN = 0.15  # context kept around a box, as a fraction of its longer side
NEAR_DUPLICATE_BITS = 6  # difference-hash distance (of 64 bits) under which two photos are one


def find_photos(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())


def read_boxes(photo: Path, root: Path) -> list[tuple[int, int, int, int]]:
    """The VOC boxes (xmin, ymin, xmax, ymax) of a photo, [] when it has no annotation; OSError naming the file when
    it is not Pascal VOC."""
    for xml in (photo.with_suffix(".xml"), *root.rglob(photo.stem + ".xml")):
        if xml.is_file():
            boxes = []
            try:
                for box in ET.parse(xml).getroot().iter("bndbox"):
                    xmin, ymin, xmax, ymax = (int(float(box.findtext(k))) for k in ("xmin", "ymin", "xmax", "ymax"))
                    if xmax > xmin and ymax > ymin:
                        boxes.append((xmin, ymin, xmax, ymax))
            except (ET.ParseError, TypeError, ValueError, OverflowError):  # not XML, or a box without four numbers
                raise OSError(f"cannot read the boxes in {xml}: not a Pascal VOC annotation") from None
            return boxes
    return []


def trim_letterbox(image: Image.Image, threshold: float = 12.0) -> tuple[Image.Image, int, int]:
    """Cut flat bars (near-uniform rows or columns) off the edges; return the image and its offset."""
    grey = np.asarray(image.convert("L"), dtype=np.float32)
    flat_rows = grey.std(axis=1) < threshold
    flat_cols = grey.std(axis=0) < threshold

    def span(flat):
        keep = np.flatnonzero(~flat)
        return (keep[0], keep[-1] + 1) if len(keep) else (0, len(flat))

    top, bottom = span(flat_rows)
    left, right = span(flat_cols)
    if (bottom - top) < grey.shape[0] // 2 or (right - left) < grey.shape[1] // 2:
        return image, 0, 0
    return image.crop((left, top, right, bottom)), left, top


def square_around(box, width: int, height: int, margin: float = BOX_MARGIN) -> tuple[int, int, int, int]:
    """The square crop centred on a box, grown by `margin`, shifted (and if need be shrunk) to fit the image."""
    xmin, ymin, xmax, ymax = box
    side = min(int(max(xmax - xmin, ymax - ymin) * (1 + margin)), width, height)
    cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
    left = int(min(max(cx - side / 2, 0), width - side))
    top = int(min(max(cy - side / 2, 0), height - side))
    return left, top, left + side, top + side


def difference_hash(image: Image.Image) -> int:
    """64-bit dHash: survives re-encoding, resizing and small edits, so near copies collide."""
    small = np.asarray(image.convert("L").resize((9, 8), Image.Resampling.BILINEAR), dtype=np.int16)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


class Curation(NamedTuple):
    left_out: frozenset[tuple[str, int]]  # the crops left out, as (photo, box) pairs
    drop: list[str]  # the flags they are left out for
    sha256: str  # of the file as read, so a run's record names the very file it trained by


def read_curation(path: Path) -> Curation:
    """The crops a curation file leaves out, the flags it leaves them out for, and the file's digest.

    The file (docs/data-audit.json) holds reviewers' flags for each crop and, under "drop", the flags that make
    a crop unfit to train on; a crop is named by its photo's path under the data folder and its box's index.
    """
    try:
        content = Path(path).read_bytes()
        curation = json.loads(content)
        drop = curation["drop"]
        left_out = frozenset((c["photo"], c["box"]) for c in curation["crops"] if set(c["flags"]) & set(drop))
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror}") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ValueError(f"{path} is not a curation file (a \"drop\" list of flags and \"crops\" with "
                         "photo, box and flags)") from None
    return Curation(left_out, list(drop), hashlib.sha256(content).hexdigest())


def load_crops(root: Path, size: int = 64, context: float = 1.0, progress=None,
               leave_out: frozenset[tuple[str, int]] = frozenset()) -> np.ndarray:
    """Every raccoon crop of the folder as uint8 (N, size, size, 3), duplicates dropped.

    context > 1 widens each square by that factor around the same centre (room for training's zoom and shift).
    leave_out names crops not to read, as (photo path under root, box index) pairs (see read_curation).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no folder {root}")
    photos = find_photos(root)
    if not photos:
        raise FileNotFoundError(f"no photos (jpg, jpeg, png) under {root}")
    seen_bytes, seen_hashes, crops = set(), [], []
    for photo in progress(photos) if progress else photos:
        digest = hashlib.sha256(photo.read_bytes()).digest()
        if digest in seen_bytes:
            continue
        seen_bytes.add(digest)
        try:
            with Image.open(photo) as raw:
                image = ImageOps.exif_transpose(raw).convert("RGB")  # greyscale and palette photos become RGB
        except OSError as error:  # not an image, or a truncated one
            raise OSError(f"cannot read {photo}: {error}") from None
        image, dx, dy = trim_letterbox(image)
        fingerprint = difference_hash(image)
        if any(bin(fingerprint ^ h).count("1") <= NEAR_DUPLICATE_BITS for h in seen_hashes):
            continue
        seen_hashes.append(fingerprint)
        boxes = [(x0 - dx, y0 - dy, x1 - dx, y1 - dy) for x0, y0, x1, y1 in read_boxes(photo, root)]
        w, h = image.size
        margin = (1 + BOX_MARGIN) * context - 1
        squares = [square_around(b, w, h, margin) for b in boxes] or [square_around((0, 0, w, h), w, h, margin=0)]
        name = photo.relative_to(root).as_posix()
        for box, square in enumerate(squares):
            if (name, box) not in leave_out:
                crop = image.crop(square).resize((size, size), Image.Resampling.LANCZOS)
                crops.append(np.asarray(crop, dtype=np.uint8))
    if not crops:
        raise FileNotFoundError(f"every crop under {root} is left out")
    return np.stack(crops)
