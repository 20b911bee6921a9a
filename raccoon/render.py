"""Turning the painted 64x64 array into files: the PNG, the denoising GIF, and the README block.

Each is written atomically (a temporary file in the same directory, then os.replace), so a failure
never leaves a partial file behind.
"""

import html
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from raccoon.files import write_atomically

MIN_SIZE, MAX_SIZE = 64, 2048
README_START, README_END = "<!-- raccoon:start -->", "<!-- raccoon:end -->"


class ReadmeError(Exception):
    """The README cannot take the raccoon; str() is the one-line message for the user."""


def check_size(size: int) -> None:
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size must be between {MIN_SIZE} and {MAX_SIZE}, got {size}")


def png_bytes(image: np.ndarray, *, size: int = 256, metadata: dict[str, str] | None = None) -> bytes:
    """The image scaled to size x size with nearest-neighbour (crisp pixel art, exact when size is a multiple
    of 64), with `metadata` as PNG text chunks. No time stamps: the same inputs give the same bytes."""
    if image.shape != (64, 64, 3) or image.dtype != np.uint8:
        raise ValueError(f"expected a 64x64x3 uint8 image, got {image.shape} {image.dtype}")
    check_size(size)
    return picture_png(Image.fromarray(image, "RGB").resize((size, size), Image.NEAREST), metadata)


def picture_png(picture: Image.Image, metadata: dict[str, str] | None = None) -> bytes:
    """Any picture (a raccoon, a calendar, a grid) as PNG bytes, `metadata` as text chunks in sorted order."""
    text = PngImagePlugin.PngInfo()
    for key, value in sorted((metadata or {}).items()):
        text.add_text(key, value)
    buffer = BytesIO()
    picture.save(buffer, format="PNG", pnginfo=text, optimize=False)
    return buffer.getvalue()


def save_png(image: np.ndarray, path: Path, *, size: int = 256, metadata: dict[str, str] | None = None) -> None:
    write_atomically(path, png_bytes(image, size=size, metadata=metadata))


def gif_bytes(frames: list[np.ndarray], *, size: int = 256, durations: list[int] | None = None) -> bytes:
    """An endless loop of 64x64 frames scaled to `size`, each shown for its duration in ms (default: the
    denoising, 80 ms a step and the finished raccoon held for 2 s)."""
    pictures = [Image.fromarray(frame, "RGB").resize((size, size), Image.NEAREST) for frame in frames]
    buffer = BytesIO()
    pictures[0].save(buffer, format="GIF", save_all=True, append_images=pictures[1:], loop=0,
                     duration=durations or [80] * (len(pictures) - 1) + [2000])
    return buffer.getvalue()


def readme_block(image_src: str, alt: str) -> str:
    return f'<img src="{html.escape(image_src)}" alt="{html.escape(alt)}">'


def picture_block(light_src: str, dark_src: str, alt: str) -> str:
    """An image in the reader's colour scheme: GitHub shows the dark source to readers in dark mode."""
    return (f'<picture><source media="(prefers-color-scheme: dark)" srcset="{html.escape(dark_src)}">'
            f'<img src="{html.escape(light_src)}" alt="{html.escape(alt)}"></picture>')


def read_readme(readme: Path) -> tuple[bytes, int, int]:
    """The README's bytes and where its raccoon block starts and ends; ReadmeError if it has no proper block.

    Called before painting too, so a README that cannot take the raccoon fails the run before any file is written.
    """
    readme = Path(readme)
    try:
        original = readme.read_bytes()
    except OSError as error:
        raise ReadmeError(f"cannot read {readme}: {error.strerror}") from None
    start, end = original.find(README_START.encode()), original.find(README_END.encode())
    markers = original.count(README_START.encode()), original.count(README_END.encode())
    if markers != (1, 1) or end < start:
        raise ReadmeError(f"{readme} needs one {README_START} line followed by one {README_END} line "
                          "where the raccoon should go")
    return original, start, end


def update_readme(readme: Path, block: str) -> bool:
    """Put `block` (HTML, see readme_block) between the raccoon markers; every other byte of the file stays.

    The block uses the file's own line ending. Returns whether the file changed.
    """
    original, start, end = read_readme(readme)
    newline = b"\r\n" if b"\r\n" in original else b"\n"
    block = newline + block.replace("\n", newline.decode()).encode() + newline
    updated = original[: start + len(README_START)] + block + original[end:]
    if updated == original:
        return False
    write_atomically(readme, updated)
    return True
