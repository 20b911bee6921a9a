"""A month's commits read at once (one git log, one GitHub search split only past its cap), bucketed by local day.

March 2026 in New York holds a DST change: the 8th is 23 hours long. GitHub is the real PyGithub client against the
fake GitHub API over HTTP on 127.0.0.1; git is a real repository.
"""

import datetime
import hashlib
import os
import re
import urllib.parse
from zoneinfo import ZoneInfo

import pytest
from fake_github import FakeCommit

from raccoon import commits
from raccoon.commits import RangeCommits, SourceError, collect_range

pytestmark = pytest.mark.usefixtures("clean_env")

TOKEN = "ghp_DoNotLeakThisToken0123456789abcdef"
ZONE = ZoneInfo("America/New_York")
FIRST, LAST = datetime.date(2026, 3, 1), datetime.date(2026, 3, 31)
MARCH = [FIRST + datetime.timedelta(days=n) for n in range(31)]


def sha(n: int) -> str:
    return hashlib.sha1(f"commit {n}".encode()).hexdigest()


def local(*args) -> datetime.datetime:
    return datetime.datetime(*args, tzinfo=ZONE)


# Instants either side of local midnights, and the March day each belongs to (None: outside the month).
EDGES = [
    (local(2026, 2, 28, 23, 59, 59), None),
    (local(2026, 3, 1, 0, 0, 0), datetime.date(2026, 3, 1)),
    (local(2026, 3, 7, 23, 59, 59), datetime.date(2026, 3, 7)),
    (local(2026, 3, 8, 0, 0, 0), datetime.date(2026, 3, 8)),  # EST; the clocks jump at 02:00
    (local(2026, 3, 8, 23, 59, 59), datetime.date(2026, 3, 8)),  # EDT: 23 hours after midnight
    (local(2026, 3, 9, 0, 0, 0), datetime.date(2026, 3, 9)),  # inside a naive 24-hour 8th
    (local(2026, 3, 31, 23, 59, 59), datetime.date(2026, 3, 31)),
    (local(2026, 4, 1, 0, 0, 0), None),
]


def march(placed: dict) -> dict:
    """Every day of March in order, with the SHAs `placed` on it, sorted."""
    return {day: tuple(sorted(placed.get(day, ()))) for day in MARCH}


def search_month(fake, **variables) -> RangeCommits:
    """The month through GitHub's search, with GITHUB_TOKEN and `variables` set, as the calendar calls it."""
    environ = {**os.environ, "GITHUB_TOKEN": TOKEN, **variables}
    return collect_range("github", FIRST, LAST, ZONE, user="octocat", api_url=fake.url, environ=environ)


def queries(fake) -> list[str]:
    return [urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)["q"][0] for path, _ in fake.requests]


def test_a_month_is_one_search_bucketed_by_local_day_across_a_dst_change(fake_github):
    written_in = [datetime.timezone.utc, ZoneInfo("Asia/Kolkata"), ZONE]  # GitHub writes each author's own offset
    fake_github.commits = [FakeCommit(sha(n), "octocat", when.astimezone(written_in[n % 3]))
                           for n, (when, _) in enumerate(EDGES)]
    found = search_month(fake_github)
    placed = {}
    for n, (_, day) in enumerate(EDGES):
        placed.setdefault(day, []).append(sha(n))
    assert found == RangeCommits("github", march(placed))
    assert list(found.days) == MARCH
    assert queries(fake_github) == ["author:octocat author-date:2026-03-01T00:00:00-05:00..2026-03-31T23:59:59-04:00"]
    for day in (datetime.date(2026, 3, 8), datetime.date(2026, 3, 9)):  # a day alone is the one-day month
        alone = collect_range("github", day, day, ZONE, user="octocat", api_url=fake_github.url)
        assert alone.days == {day: found.days[day]}


def test_a_normal_month_is_one_request_and_a_busy_one_one_search(fake_github):
    hours = (9, 13, 22)
    fake_github.commits = [FakeCommit(sha(100 * day.day + hour), "octocat", local(2026, 3, day.day, hour, 30))
                           for day in MARCH for hour in hours]
    found = search_month(fake_github)
    assert all(len(shas) == len(hours) for shas in found.days.values())
    assert len(fake_github.requests) == 1  # 93 commits: one page

    fake_github.requests.clear()
    fake_github.commits += [FakeCommit(sha(10_000 + n), "octocat", local(2026, 3, 15, 12, n // 60, n % 60))
                            for n in range(150)]
    found = search_month(fake_github)
    assert len(found.days[datetime.date(2026, 3, 15)]) == len(hours) + 150
    assert len(fake_github.requests) == 3 and len(set(queries(fake_github))) == 1  # 243 commits: three pages
    assert found.warnings == () and found.incomplete == ""


def test_a_month_over_the_cap_is_split_until_every_part_fits(fake_github):
    every = datetime.timedelta(minutes=17)
    fake_github.commits = [FakeCommit(sha(n), "octocat", local(2026, 3, 1, 0, 7) + n * every) for n in range(2500)]
    found = search_month(fake_github)
    shas = [sha for day in found.days.values() for sha in day]
    assert sorted(shas) == sorted(commit.sha for commit in fake_github.commits)  # each once
    assert found.incomplete == ""
    assert len(found.warnings) == 1
    split = re.fullmatch(r"the commits of 2026-03-01 to 2026-03-31 were more than GitHub's search returns at once "
                         r"\(1000\); searched in (\d+) parts", found.warnings[0])
    assert split and split[1] == "4"  # the month and both its halves match over 1000; each quarter fits
    assert found.days[datetime.date(2026, 3, 8)] == tuple(sorted(
        commit.sha for commit in fake_github.commits if local(2026, 3, 8) <= commit.date < local(2026, 3, 9)))


def test_the_token_refused_month_is_searched_anonymously_with_a_warning(fake_github):
    fake_github.refused_token = TOKEN
    fake_github.commits = [FakeCommit(sha(0), "octocat", local(2026, 3, 8, 12))]
    found = search_month(fake_github)
    assert found.days[datetime.date(2026, 3, 8)] == (sha(0),)
    assert found.warnings == ("GitHub refused the commit search to this token (403 Resource not accessible by "
                              "integration); searched anonymously (public commits only)",)
    assert [authorization for _, authorization in fake_github.requests] == [f"token {TOKEN}", None]


@pytest.mark.parametrize("status, fragment", [(401, "GITHUB_TOKEN was rejected"), (503, "failed with 503")])
def test_a_failing_search_fails_in_one_line_without_the_token(fake_github, status, fragment):
    if status == 401:
        fake_github.token = "the-right-one"
    else:
        fake_github.script(503, {"message": "Service unavailable"}, times=10)
    with pytest.raises(SourceError) as raised:
        search_month(fake_github, RACCOON_GITHUB_RETRIES="1")
    message = str(raised.value)
    assert fragment in message and "\n" not in message and TOKEN not in message


def scripted_items(fake, *items):
    fake.script(200, {"total_count": len(items), "incomplete_results": False, "items": list(items)})


def test_an_answer_dated_outside_the_month_is_left_out(fake_github):
    scripted_items(fake_github, {"sha": sha(1), "commit": {"author": {"date": "2026-03-31T23:30:00.000-04:00"}}},
                   {"sha": sha(2), "commit": {"author": {"date": "2026-04-01T03:59:59Z"}}},  # 23:59:59 on the 31st
                   {"sha": sha(3), "commit": {"author": {"date": "2026-04-01T04:00:00Z"}}})  # April, local
    found = search_month(fake_github)
    assert found.days[LAST] == tuple(sorted([sha(1), sha(2)]))
    assert sum(map(len, found.days.values())) == 2


@pytest.mark.parametrize("author, fragment", [
    ({"name": "octocat"}, "without a valid author date"),
    ({"date": None}, "without a valid author date"),
    ({"date": "2026-03-08T12:00:00"}, "without a valid author date"),  # no offset: which instant?
    ({"date": "yesterday"}, "malformed JSON"),
])
def test_an_answer_without_a_good_author_date_is_malformed(fake_github, author, fragment):
    scripted_items(fake_github, {"sha": sha(1), "commit": {"author": author}})
    with pytest.raises(SourceError, match=fragment) as raised:
        search_month(fake_github)
    assert "\n" not in str(raised.value)


def test_git_reads_a_month_in_one_pass_bucketed_across_a_dst_change(git_repo, monkeypatch):
    placed = {}
    for when, day in EDGES:
        placed.setdefault(day, []).append(git_repo.commit(when))
    git_repo.commit(local(2026, 3, 15, 12), email="someone@else.org")
    git_calls, real_git = [], commits._git
    monkeypatch.setattr(commits, "_git", lambda args, cwd: git_calls.append(args) or real_git(args, cwd))
    found = collect_range("git", FIRST, LAST, ZONE, cwd=git_repo.path)
    assert found == RangeCommits("git", march(placed))
    assert sum("log" in args for args in git_calls) == 1
    for day in MARCH:  # a day alone is the one-day month
        assert collect_range("git", day, day, ZONE, cwd=git_repo.path).days == {day: found.days[day]}


def test_list_source_gives_one_day_and_refuses_a_range(tmp_path):
    listing = tmp_path / "shas.txt"
    listing.write_text(f"{'B' * 40}\n{'a' * 40}\n{'b' * 40}\n")
    day = datetime.date(2026, 3, 8)
    assert collect_range("list", day, day, ZONE, commits_file=str(listing)) == RangeCommits(
        "list", {day: ("a" * 40, "b" * 40)})
    with pytest.raises(SourceError, match="^--source list gives one day's commits; a range of days needs git, "
                                          "github or none$"):
        collect_range("list", FIRST, LAST, ZONE, commits_file=str(listing))


def test_none_source_gives_every_day_empty():
    assert collect_range("none", FIRST, LAST, ZONE) == RangeCommits("none", march({}))
