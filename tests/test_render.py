"""The PNG and the README block: exact pixels, deterministic bytes, no partial files, untouched surroundings."""

import os

import numpy as np
import pytest
from PIL import Image

from raccoon import files
from raccoon.render import README_END, README_START, ReadmeError, png_bytes, readme_block, save_png, update_readme

START, END = README_START.encode(), README_END.encode()
IMAGE = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)


def test_png_is_the_image_scaled_exactly(tmp_path):
    save_png(IMAGE, tmp_path / "r.png", size=256, metadata={"raccoon:date": "2024-01-02", "raccoon:seed": "ab"})
    with Image.open(tmp_path / "r.png") as picture:
        pixels = np.asarray(picture)
        assert picture.text == {"raccoon:date": "2024-01-02", "raccoon:seed": "ab"}
    assert pixels.shape == (256, 256, 3)
    np.testing.assert_array_equal(pixels, IMAGE.repeat(4, axis=0).repeat(4, axis=1))


def test_png_bytes_depend_on_nothing_but_their_inputs():
    metadata = {"raccoon:seed": "ab", "raccoon:date": "2024-01-02"}
    first = png_bytes(IMAGE, size=128, metadata=metadata)
    assert first == png_bytes(IMAGE.copy(), size=128, metadata=dict(reversed(metadata.items())))
    assert first != png_bytes(IMAGE, size=128, metadata={**metadata, "raccoon:seed": "cd"})
    assert b"tIME" not in first


@pytest.mark.parametrize("image", [IMAGE[:32], IMAGE.astype(np.float32), IMAGE[..., :1]])
def test_wrong_arrays_are_refused(image, tmp_path):
    with pytest.raises(ValueError, match="64x64x3 uint8"):
        save_png(image, tmp_path / "r.png")
    assert os.listdir(tmp_path) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "r.png"
    target.write_bytes(b"yesterday's raccoon")

    def disk_full(source, destination):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", disk_full)
    with pytest.raises(OSError) as raised:
        save_png(IMAGE, target)
    assert (raised.value.errno, raised.value.filename) == (28, str(target))  # not the temporary file's name
    assert target.read_bytes() == b"yesterday's raccoon"
    assert os.listdir(tmp_path) == ["r.png"]


def test_the_new_file_is_on_disk_before_it_replaces_the_old(tmp_path, monkeypatch):
    """A crash between the two must leave yesterday's raccoon or today's whole, never an empty file."""
    target, events = tmp_path / "r.png", []
    target.write_bytes(b"yesterday's raccoon")
    fsync, replace = files.os.fsync, files.os.replace
    monkeypatch.setattr(files.os, "fsync", lambda fd: (events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))),
                                                       fsync(fd)))
    monkeypatch.setattr(files.os, "replace", lambda a, b: (events.append(("replace", str(a))), replace(a, b)))
    save_png(IMAGE, target)
    assert [kind for kind, _ in events] == ["fsync", "replace"] and events[0][1] == events[1][1]


def test_new_files_get_the_usual_mode_and_old_files_keep_theirs(tmp_path):
    umask = os.umask(0o022)
    try:
        save_png(IMAGE, tmp_path / "new.png")
        kept = tmp_path / "kept.png"
        kept.write_bytes(b"")
        kept.chmod(0o600)
        save_png(IMAGE, kept)
    finally:
        os.umask(umask)
    assert (tmp_path / "new.png").stat().st_mode & 0o777 == 0o644
    assert kept.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_readme_block_changes_only_what_is_between_the_markers(tmp_path, newline):
    before = b"# Hi \xc3\xa9\t" + newline + b"intro  " + newline + START
    after = END + b"  tail" + newline + b"no final newline"
    readme = tmp_path / "README.md"
    readme.write_bytes(before + newline + b"old picture" + newline + b"more old" + newline + after)
    assert update_readme(readme, readme_block("raccoon.png", 'Raccoon of 2024-01-02 & "friends"')) is True
    expected_block = b'<img src="raccoon.png" alt="Raccoon of 2024-01-02 &amp; &quot;friends&quot;">'
    assert readme.read_bytes() == before + newline + expected_block + newline + after
    assert update_readme(readme, readme_block("raccoon.png", 'Raccoon of 2024-01-02 & "friends"')) is False


@pytest.mark.parametrize("text", [
    b"# no markers\n",
    START + b"\nonly a start\n",
    b"only an end\n" + END,
    END + b"\nreversed\n" + START,
    START + b"\n" + END + b"\n" + START + b"\n" + END,
])
def test_readme_without_one_pair_of_markers_is_an_error(tmp_path, text):
    readme = tmp_path / "README.md"
    readme.write_bytes(text)
    with pytest.raises(ReadmeError, match="raccoon:start"):
        update_readme(readme, readme_block("raccoon.png", "raccoon"))
    assert readme.read_bytes() == text
    assert os.listdir(tmp_path) == ["README.md"]


def test_missing_readme_is_an_error(tmp_path):
    with pytest.raises(ReadmeError, match="cannot read"):
        update_readme(tmp_path / "README.md", readme_block("raccoon.png", "raccoon"))
