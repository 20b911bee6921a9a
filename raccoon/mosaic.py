"""The calendar mosaic: a month of 64x64 raccoons laid out as a calendar, one PNG per theme.

Each tile is the day's raccoon pixel for pixel (the same 64x64 image `raccoon paint --size 64` writes), at
its natural size: 7 columns make a picture 496 px wide, what a profile README shows without scaling. The day
number and a mark of its commit count (GitHub's contribution greens) sit in a strip under each tile, never on
it. Days after today are empty frames. Month and weekday names are English whatever the locale, so a
calendar looks the same on every machine.
"""

import calendar
import datetime
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from raccoon import render

TILE, GAP, MARGIN = 64, 4, 12
TITLE, WEEKDAY_ROW, CAPTION = 28, 16, 15  # heights: the month's name, the weekday names, the strip under a tile
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
WEEK_STARTS = ("monday", "sunday")
COMMIT_LEVELS = (1, 2, 4, 7)  # commits from which a day's mark takes the next green, as GitHub's graph does


@dataclass(frozen=True)
class Theme:
    background: str
    text: str
    muted: str
    empty: str  # the frame of a day still to come
    levels: tuple[str, ...]  # the commit mark: no commits, then four greens


THEMES = {
    "light": Theme("#ffffff", "#1f2328", "#656d76", "#eff2f5",
                   ("#ebedf0", "#9be9a8", "#40c463", "#30a14e", "#216e39")),
    "dark": Theme("#0d1117", "#e6edf3", "#7d8590", "#161b22",
                  ("#2d333b", "#0e4429", "#006d32", "#26a641", "#39d353")),
}


def last_day(first: datetime.date) -> datetime.date:
    return first.replace(day=calendar.monthrange(first.year, first.month)[1])


def theme_variants(path: Path) -> tuple[Path, Path]:
    """Where the light and dark calendars go beside `path`: NAME-light.png and NAME-dark.png."""
    return tuple(path.with_name(f"{path.stem}-{theme}{path.suffix}") for theme in ("light", "dark"))


def column(day: datetime.date, week_start: str) -> int:
    return (day.weekday() + (week_start == "sunday")) % 7


def weeks(first: datetime.date, week_start: str) -> int:
    return (column(first, week_start) + last_day(first).day + 6) // 7


def tile_origin(first: datetime.date, day: datetime.date, week_start: str = "monday") -> tuple[int, int]:
    """The top-left pixel of `day`'s tile in the calendar of the month that starts on `first`."""
    row = (column(first, week_start) + day.day - 1) // 7
    return (MARGIN + column(day, week_start) * (TILE + GAP),
            MARGIN + TITLE + WEEKDAY_ROW + row * (TILE + CAPTION + GAP))


def commit_level(count: int) -> int:
    return sum(count >= threshold for threshold in COMMIT_LEVELS)


def png(first: datetime.date, raccoons: dict[datetime.date, np.ndarray], commits: dict[datetime.date, int], *,
        theme: str = "light", week_start: str = "monday") -> bytes:
    """The month that starts on `first` as a PNG: each day of `raccoons` (64x64x3 uint8) with its commit count,
    the days it lacks as empty frames."""
    colours = THEMES[theme]
    width = 2 * MARGIN + 7 * TILE + 6 * GAP
    height = 2 * MARGIN + TITLE + WEEKDAY_ROW + weeks(first, week_start) * (TILE + CAPTION + GAP) - GAP
    picture = Image.new("RGB", (width, height), colours.background)
    draw = ImageDraw.Draw(picture)
    title, small = ImageFont.load_default(size=16), ImageFont.load_default(size=10)
    draw.text((MARGIN, MARGIN), f"{MONTHS[first.month - 1]} {first.year}", fill=colours.text, font=title)
    names = WEEKDAYS[6:] + WEEKDAYS[:6] if week_start == "sunday" else WEEKDAYS
    for index, name in enumerate(names):
        draw.text((MARGIN + index * (TILE + GAP), MARGIN + TITLE), name, fill=colours.muted, font=small)
    day = first
    while day.month == first.month:
        x, y = tile_origin(first, day, week_start)
        if day in raccoons:
            picture.paste(Image.fromarray(raccoons[day], "RGB"), (x, y))
            mark = colours.levels[commit_level(commits.get(day, 0))]
            draw.rectangle((x + TILE - 10, y + TILE + 3, x + TILE - 1, y + TILE + 12), fill=mark)
        else:
            draw.rectangle((x, y, x + TILE - 1, y + TILE - 1), fill=colours.empty)
        draw.text((x + 1, y + TILE + 2), str(day.day), fill=colours.text if day in raccoons else colours.muted,
                  font=small)
        day += datetime.timedelta(days=1)
    return render.picture_png(picture)
