"""A month of raccoons: the calendar, its archive and the morph, each day exactly the raccoon `raccoon paint` gives."""

import datetime
import io
import json
import os
import struct
import zlib
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from PIL import Image

from raccoon import mosaic
from raccoon.day import DayRecord
from raccoon.painting import CommitSource, MonthRequest, Painter, PaintError, archive_path, paint_month

MONTH = datetime.date(2024, 2, 1)  # a leap February: 29 days, starting on a Thursday
STEPS = "3"


@pytest.fixture
def folder(tmp_path, tiny_model, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def pixels(png: bytes | Path) -> np.ndarray:
    with Image.open(io.BytesIO(png) if isinstance(png, bytes) else png) as picture:
        return np.asarray(picture.convert("RGB"))


def tile(calendar: np.ndarray, day: datetime.date, week_start: str = "monday") -> np.ndarray:
    x, y = mosaic.tile_origin(day.replace(day=1), day, week_start)
    return calendar[y : y + 64, x : x + 64]


def month_request(folder: Path, **fields) -> MonthRequest:
    return MonthRequest(**{"month": MONTH, "zone": ZoneInfo("UTC"), "commits": CommitSource(source="none"),
                           "steps": int(STEPS), "out": folder / "calendar.png", **fields})


@pytest.mark.parametrize("week_start", mosaic.WEEK_STARTS)
def test_every_tile_is_that_days_paint(raccoon, folder, week_start):
    run = raccoon("calendar", "--month", "2024-02", "--tz", "UTC", "--source", "none", "--steps", STEPS,
                  "--week-start", week_start, "--json")
    assert run.code == 0, run.err
    report = json.loads(run.out)
    assert [day["date"] for day in report["days"]] == [f"2024-02-{d:02d}" for d in range(1, 30)]
    calendar = pixels(folder / "calendar.png")
    assert calendar.shape[1] == 2 * mosaic.MARGIN + 7 * 64 + 6 * mosaic.GAP <= 500
    for day in (1, 4, 5, 17, 29):  # first, a Sunday, a Monday, the middle, the leap day
        date = MONTH.replace(day=day)
        painted = raccoon("paint", "--source", "none", "--tz", "UTC", "--date", date.isoformat(), "--size", "64",
                          "--steps", STEPS, "--out", folder / f"{day}.png", "--json")
        assert painted.code == 0, painted.err
        assert report["days"][day - 1]["seed"] == json.loads(painted.out)["seed"]
        assert tile(calendar, date, week_start).tobytes() == pixels(folder / f"{day}.png").tobytes(), date


def test_a_batched_month_is_the_same_as_each_day_alone(folder):
    painter = Painter.load()
    seeds = [DayRecord.of(MONTH.replace(day=d), []).seed() for d in range(1, 30)]
    together = painter.paint(seeds, steps=int(STEPS)).images
    for index in (0, 13, 28):
        alone = Painter(painter.denoiser, painter.choice)  # a new painter: nothing painted before
        assert together[index].tobytes() == alone.paint([seeds[index]], steps=int(STEPS)).images[0].tobytes()


def test_days_after_today_are_empty_and_the_json_lists_each_day(folder):
    today = MONTH.replace(day=10)
    report = paint_month(month_request(folder, today=today))
    assert [day.date for day in report.days] == [MONTH.replace(day=d).isoformat() for d in range(1, 11)]
    assert all(day.commits == 0 and not day.archived for day in report.days) and report.source == "none"
    calendar = pixels(folder / "calendar.png")
    empty = np.array(Image.new("RGB", (1, 1), mosaic.THEMES["light"].empty))[0, 0]
    assert (tile(calendar, MONTH.replace(day=11)) == empty).all()
    assert not (tile(calendar, today) == empty).all()


def test_themes_and_variants(folder):
    paint_month(month_request(folder, theme="dark", variants=True, today=MONTH.replace(day=3)))
    light, dark = (pixels(folder / name) for name in ("calendar-light.png", "calendar-dark.png"))
    assert (pixels(folder / "calendar.png") == dark).all() and not (light == dark).all()
    assert tuple(light[0, 0]) == (255, 255, 255) and tuple(dark[0, 0]) == (13, 17, 23)
    day = MONTH.replace(day=2)
    assert tile(light, day).tobytes() == tile(dark, day).tobytes()


def test_archive_keeps_finished_days_and_is_reused(folder, raccoon):
    archive = folder / "archive"
    archive.mkdir()
    today = MONTH.replace(day=5)
    first = paint_month(month_request(folder, archive=archive, today=today))
    kept = sorted(p.relative_to(archive).as_posix() for p in archive.rglob("*.png"))
    assert kept == [f"2024/02/{d:02d}.png" for d in range(1, 5)]  # today is not over: not kept
    painted = raccoon("paint", "--source", "none", "--tz", "UTC", "--date", "2024-02-03", "--size", "64",
                      "--steps", STEPS, "--out", folder / "alone.png")
    assert painted.code == 0 and (archive / "2024/02/03.png").read_bytes() == (folder / "alone.png").read_bytes()
    # A kept day is read back, not painted: doctor one, and the calendar shows it. One kept for another seed (the
    # day's commits changed since), or painted another way (other weights or settings), is painted again and
    # replaced.
    with Image.open(archive_path(archive, MONTH.replace(day=2))) as picture:
        kept_text, doctored = dict(picture.text), np.zeros((64, 64, 3), np.uint8)
    from raccoon.render import save_png
    save_png(doctored, archive_path(archive, MONTH.replace(day=2)), size=64, metadata=kept_text)
    save_png(doctored, archive_path(archive, MONTH.replace(day=3)), size=64,
             metadata={**kept_text, "raccoon:seed": "0" * 64})
    with Image.open(archive_path(archive, MONTH.replace(day=4))) as picture:
        save_png(doctored, archive_path(archive, MONTH.replace(day=4)), size=64,
                 metadata={**picture.text, "raccoon:painting": "0" * 16})
    second = paint_month(month_request(folder, archive=archive, today=today))
    assert [day.archived for day in second.days] == [True, True, False, False, False]
    assert [day.seed for day in second.days] == [day.seed for day in first.days]
    calendar = pixels(folder / "calendar.png")
    assert (tile(calendar, MONTH.replace(day=2)) == 0).all()
    assert (tile(calendar, MONTH.replace(day=4)) != 0).any()
    assert tile(calendar, MONTH.replace(day=3)).tobytes() == pixels(folder / "alone.png").tobytes()
    assert (archive / "2024/02/03.png").read_bytes() == (folder / "alone.png").read_bytes()
    # Other steps paint other raccoons: nothing kept is reused.
    third = paint_month(month_request(folder, archive=archive, today=today, steps=int(STEPS) + 1))
    assert not any(day.archived for day in third.days)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_archive_is_refused_before_painting(folder):
    archive = folder / "archive"
    archive.mkdir(mode=0o555)
    with pytest.raises(PaintError, match="^archive .* is not writable$"):
        paint_month(month_request(folder, archive=archive, today=MONTH.replace(day=2)))
    assert not (folder / "calendar.png").exists()


def test_a_month_of_an_early_year_is_named_in_yyyy_mm_form(folder):
    report = paint_month(month_request(folder, month=datetime.date(2, 2, 1), today=datetime.date(2, 2, 2)))
    assert report.month == "0002-02" and [day.date for day in report.days] == ["0002-02-01", "0002-02-02"]


def test_an_archived_png_too_big_to_open_is_painted_again(folder):
    archive = folder / "archive"
    bomb = archive_path(archive, MONTH)
    bomb.parent.mkdir(parents=True)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)  # 900 megapixels, RGB: Pillow refuses to open it
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    report = paint_month(month_request(folder, archive=archive, today=MONTH.replace(day=2)))
    assert not report.days[0].archived
    with Image.open(bomb) as picture:
        assert picture.size == (64, 64)  # replaced by the day's raccoon


def test_the_archive_does_not_write_through_a_link_out_of_it(folder, tmp_path):
    archive, elsewhere = folder / "archive", tmp_path / "elsewhere"
    archive.mkdir(), elsewhere.mkdir()
    (archive / "2024").symlink_to(elsewhere)
    with pytest.raises(PaintError, match="archive: .*2024/02 is a link leading out of"):
        paint_month(month_request(folder, archive=archive, today=MONTH.replace(day=5)))
    assert not list(elsewhere.iterdir()) and not (folder / "calendar.png").exists()


def test_a_month_from_git_matches_each_days_paint(raccoon, git_repo, tmp_path, tiny_model, monkeypatch):
    zone = ZoneInfo("Europe/Paris")
    shas = {day: git_repo.commit(datetime.datetime(2024, 2, day, 23, 30, tzinfo=zone)) for day in (6, 7, 7)}
    monkeypatch.chdir(git_repo.path)
    run = raccoon("calendar", "--month", "2024-02", "--tz", "Europe/Paris", "--steps", STEPS, "--out",
                  tmp_path / "c.png", "--json")
    assert run.code == 0, run.err
    days = {day["date"]: day for day in json.loads(run.out)["days"]}
    assert days["2024-02-06"]["commits"] == 1 and days["2024-02-07"]["commits"] == 2
    for date in ("2024-02-06", "2024-02-07", "2024-02-08"):
        painted = raccoon("paint", "--tz", "Europe/Paris", "--date", date, "--steps", STEPS, "--size", "64",
                          "--out", tmp_path / "d.png", "--json")
        assert json.loads(painted.out)["seed"] == days[date]["seed"]
    assert shas


@pytest.mark.parametrize("args, message", [
    (["--month", "2024-13"], "not a month in YYYY-MM form"),
    (["--month", "２０２４-０２"], "not a month in YYYY-MM form"),  # digits, but not ASCII ones
    (["--month", "2999-01"], "has not begun"),
    (["--month", "9999-12"], "years 2 to 9998"),
    (["--month", "0001-01"], "years 2 to 9998"),
    (["--month", "2024-02", "--source", "list"], "invalid choice"),
    (["--month", "2024-02", "--out", "{tmp}/missing/c.png"], "does not exist"),
    (["--month", "2024-02", "--archive", "{tmp}/nowhere"], "is not a directory"),
    (["--month", "2024-02", "--theme", "sepia"], "invalid choice"),
])
def test_bad_calendar_input_is_one_line(raccoon, folder, args, message):
    run = raccoon("calendar", "--source", "none", *[arg.format(tmp=folder) for arg in args])
    assert run.code == 2 and run.out == "" and run.err.count("\n") == 1 and message in run.err, run.err
    assert list(folder.iterdir()) == []


def test_morph_walks_from_one_days_raccoon_to_the_others_and_back(raccoon, folder):
    run = raccoon("morph", "--from", "2024-02-01", "--to", "2024-02-02", "--tz", "UTC", "--source", "none",
                  "--frames", "4", "--steps", STEPS, "--size", "64", "--out", folder / "m.gif", "--json")
    assert run.code == 0, run.err
    ends = []
    for date in ("2024-02-01", "2024-02-02"):
        assert raccoon("paint", "--source", "none", "--tz", "UTC", "--date", date, "--size", "64", "--steps", STEPS,
                       "--out", folder / f"{date}.png").code == 0
        ends.append(pixels(folder / f"{date}.png").astype(int))
    with Image.open(folder / "m.gif") as gif:
        assert gif.n_frames == 6 and gif.info["loop"] == 0  # 4 frames there, 2 on the way back
        frames = []
        for index in range(gif.n_frames):
            gif.seek(index)
            frames.append(np.asarray(gif.convert("RGB"), dtype=int))
    # GIF frames are palette images: each end is its day's raccoon up to that rounding, far closer to it than to the
    # other day's; the frames between move away from one and towards the other; the way back retraces the way there
    distance = [[np.abs(frame - end).mean() for end in ends] for frame in frames[:4]]
    assert distance[0][0] < distance[0][1] / 3 and distance[3][1] < distance[3][0] / 3
    assert distance[0][0] < distance[1][0] < distance[2][0] < distance[3][0]
    assert np.array_equal(frames[4], frames[2]) and np.array_equal(frames[5], frames[1])
    again = folder / "again.gif"
    assert raccoon("morph", "--from", "2024-02-01", "--to", "2024-02-02", "--tz", "UTC", "--source", "none",
                   "--frames", "4", "--steps", STEPS, "--size", "64", "--out", again).code == 0
    assert again.read_bytes() == (folder / "m.gif").read_bytes()


def test_slerp_keeps_the_noise_strength():
    from raccoon.painting import slerp

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((3, 64, 64)).astype(np.float32) for _ in range(2))
    assert np.array_equal(slerp(a, b, 0.0), a) and np.allclose(slerp(a, b, 1.0), b, atol=1e-5)
    middle = slerp(a, b, 0.5)
    assert abs(np.linalg.norm(middle) / np.linalg.norm(a) - 1) < 0.02
    assert np.linalg.norm((a + b) / 2) / np.linalg.norm(a) < 0.75  # what a straight line would give


def test_no_painting_when_every_day_is_archived(folder):
    archive = folder / "archive"
    archive.mkdir()
    request = month_request(folder, archive=archive, today=datetime.date(2024, 3, 2))
    first = paint_month(request)

    class Refusing:
        """A network that must not be run: every day is in the archive."""

        guidance = 1.0

        def __call__(self, x, t):
            raise AssertionError("painted a day the archive holds")

    again = paint_month(request, Painter(Refusing()))
    assert all(day.archived for day in again.days) and again.days == tuple(
        type(day)(day.date, day.seed, day.commits, True) for day in first.days)
