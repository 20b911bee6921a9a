"""The painting API that `raccoon paint` and the Action share: one request, its files, its report."""

import datetime
import os
from pathlib import Path

import numpy as np
import pytest

from raccoon.day import DayRecord
from raccoon.painting import CommitSource, DayRequest, Painter, PaintError, paint_day
from raccoon.render import README_END, README_START

DAY = datetime.date(2024, 1, 2)
README = f"# Me\n\n{README_START}\n{README_END}\n\nThe rest.\n".encode()


@pytest.fixture
def folder(tmp_path, tiny_model, monkeypatch) -> Path:
    """A profile folder with a README, outside any git repository, as the current directory."""
    directory = tmp_path / "profile"
    directory.mkdir()
    monkeypatch.chdir(directory)
    (directory / "README.md").write_bytes(README)
    return directory


def request(folder: Path, source: str = "none", on_error: str = "fail", author: str | None = None,
            **fields) -> DayRequest:
    commits = CommitSource(source=source, on_error=on_error, author=author)
    return DayRequest(**{"date": DAY, "commits": commits, "out": folder / "raccoon.png", "steps": 3, **fields})


def test_report_matches_the_files_written(folder):
    report = paint_day(request(folder, readme=folder / "README.md", gif=folder / "raccoon.gif"))
    assert report.seed == DayRecord.of(DAY, []).seed().hex() and report.commits == 0 and report.source == "none"
    assert report.readme_changed and report.warnings == ()
    readme = (folder / "README.md").read_text()
    assert f'<img src="raccoon.png" alt="{report.alt}">' in readme and readme.endswith("The rest.\n")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "raccoon.gif", "raccoon.png"]
    again = paint_day(request(folder, readme=folder / "README.md"))
    assert not again.readme_changed and again.seed == report.seed


def test_readme_block_points_at_the_image_from_the_readmes_folder(folder):
    (folder / "images").mkdir()
    (folder / "docs").mkdir()
    (folder / "docs" / "README.md").write_bytes(README)
    paint_day(request(folder, out=folder / "images" / "r.png", readme=folder / "docs" / "README.md"))
    assert '<img src="../images/r.png"' in (folder / "docs" / "README.md").read_text()


@pytest.mark.parametrize("outputs, message", [
    ({"out": "README.md", "readme": "README.md"}, "must be different files"),
    ({"gif": "raccoon.png"}, "must be different files"),
    ({"out": ".git/raccoon.png"}, "inside a .git folder"),
    ({"gif": ".git/hooks/raccoon.gif"}, "inside a .git folder"),
    ({"readme": ".git/README.md"}, "inside a .git folder"),
], ids=["png-is-readme", "gif-is-png", "png-in-git", "gif-in-git", "readme-in-git"])
def test_refused_before_anything_is_written(folder, outputs, message):
    (folder / ".git" / "hooks").mkdir(parents=True)
    (folder / ".git" / "README.md").write_bytes(README)
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    with pytest.raises(PaintError, match=message) as error:
        paint_day(request(folder, **{name: folder / value for name, value in outputs.items()}))
    assert "\n" not in str(error.value)
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before


def test_a_symlink_into_git_is_refused(folder):
    (folder / ".git").mkdir()
    os.symlink(folder / ".git", folder / "innocent")
    with pytest.raises(PaintError, match="inside a .git folder"):
        paint_day(request(folder, out=folder / "innocent" / "raccoon.png"))


def test_date_only_fallback_reports_why_and_warns(folder):
    report = paint_day(request(folder, source="git", on_error="date-only", author="me@example.com"))
    assert report.fallback.startswith("not a git repository") and report.seed == DayRecord.of(DAY, []).seed().hex()
    assert report.warnings == (f"{report.fallback}; painted the date-only raccoon instead",)


@pytest.mark.parametrize("fields, message", [
    ({"on_error": "shrug"}, "on_error must be one of fail, date-only"),
    ({"backend": "tensorflow"}, "unknown backend"),
    ({"size": 63}, "size must be between 64 and 2048"),
    ({"steps": 0}, "steps must be between 1 and"),
])
def test_requests_from_code_are_checked_too(folder, fields, message):
    with pytest.raises(PaintError, match=message):
        paint_day(request(folder, **fields))
    assert not (folder / "raccoon.png").exists()


def test_one_painter_paints_many_days_as_each_alone(folder):
    painter = Painter.load()
    seeds = [DayRecord.of(DAY + datetime.timedelta(days=i), []).seed() for i in range(3)]
    together = painter.paint(seeds, steps=3).images
    alone = [paint_day(request(folder, date=DAY + datetime.timedelta(days=i), size=64), painter) for i in range(3)]
    assert [report.seed for report in alone] == [seed.hex() for seed in seeds]
    assert together.shape == (3, 64, 64, 3) and len({image.tobytes() for image in together}) == 3
    np.testing.assert_array_equal(together[2], Painter.load().paint(seeds[2:], steps=3).images[0])


def test_readme_block_shows_the_calendar_in_the_readers_colour_scheme(folder, raccoon):
    run = raccoon("paint", "--source", "none", "--date", "2024-01-02", "--steps", "2", "--readme", "README.md",
                  "--calendar", "raccoons/calendar.png")
    assert run.code == 0, run.err
    readme = (folder / "README.md").read_text()
    assert ('<picture><source media="(prefers-color-scheme: dark)" srcset="raccoons/calendar-dark.png">'
            '<img src="raccoons/calendar-light.png" alt="The raccoons of January 2024, a calendar"></picture>') in readme
    alone = raccoon("paint", "--source", "none", "--calendar", "c.png")
    assert alone.code == 2 and "--calendar goes with --readme" in alone.err
