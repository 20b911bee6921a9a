"""Turning what a user typed (a command-line option or an Action input) into a checked value.

Each parser takes the text and returns the value, or raises argparse.ArgumentTypeError with one line saying
what is wrong: argparse puts the option's name before it, the Action's entrypoint its input's.
"""

import argparse
import datetime
import math
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from raccoon import render
from raccoon.day import MAX_CANDIDATES

MIN_STEPS, MAX_STEPS = 1, 1000
MAX_GUIDANCE = 10.0
GITHUB_LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})")


# A day is searched for by its local midnights: the first day of year 1 begins in year 0 east of UTC, and 9999-12-31
# ends in year 10000, which Python's dates do not hold.
FIRST_YEAR, LAST_YEAR = 2, 9998
YEARS = f"years {FIRST_YEAR} to {LAST_YEAR}"


def day(text: str) -> datetime.date:
    try:
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text) and FIRST_YEAR <= int(text[:4]) <= LAST_YEAR:
            return datetime.date.fromisoformat(text)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"not a real date in YYYY-MM-DD form, {YEARS}: {text!r}")


def month(text: str) -> datetime.date:
    """A month as YYYY-MM, as the date of its first day."""
    if (re.fullmatch(r"[0-9]{4}-[0-9]{2}", text) and 1 <= int(text[5:]) <= 12
            and FIRST_YEAR <= int(text[:4]) <= LAST_YEAR):
        return datetime.date(int(text[:4]), int(text[5:]), 1)
    raise argparse.ArgumentTypeError(f"not a month in YYYY-MM form, {YEARS}: {text!r}")


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise argparse.ArgumentTypeError(f"unknown time zone {name!r}: use an IANA name such as Europe/Paris") from None


def number_between(kind: type, low: float, high: float = math.inf):
    """A parser of a `kind` (int or float) from low to high."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a{' whole' if kind is int else ''} number: {text!r}") from None
        if not low <= value <= high:
            bounds = f"at least {low:g}" if high == math.inf else f"between {low:g} and {high:g}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {text}")
        return value

    return parse


def whole_number_between(low: int, high: int):
    return number_between(int, low, high)


size = whole_number_between(render.MIN_SIZE, render.MAX_SIZE)
steps = whole_number_between(MIN_STEPS, MAX_STEPS)
candidates = whole_number_between(1, MAX_CANDIDATES)  # best of K


def guidance(text: str) -> float:
    """An autoguidance weight: 1 (none) to MAX_GUIDANCE."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= value <= MAX_GUIDANCE:
        raise argparse.ArgumentTypeError(f"must be between 1 (no guidance) and {MAX_GUIDANCE:g}, got {text}")
    return value


def login(text: str) -> str:
    if not GITHUB_LOGIN.fullmatch(text):
        raise argparse.ArgumentTypeError(f"not a GitHub login: {text[:60]!r}")
    return text


def one_of(choices: tuple[str, ...]):
    def parse(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(f"must be one of {', '.join(choices)}, got {text[:60]!r}")
        return text

    return parse


class UsageError(Exception):
    """A command line that cannot be run; str() is the one-line message for the user."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose complaints are one line for the caller to print, not a usage dump and an exit."""

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help)")
