"""Day bounds and the git, list, none and auto sources, against real git repositories built in tmp_path."""

import datetime
import io
from zoneinfo import ZoneInfo

import pytest

from raccoon.commits import DayCommits, SourceError, collect, day_bounds, git_commits, listed_commits, resolve_source

UTC = datetime.timezone.utc
HOUR = 3600


def utc(*args) -> datetime.datetime:
    return datetime.datetime(*args, tzinfo=UTC)


def span(date, zone_name) -> tuple[float, float]:
    start, end = day_bounds(date, ZoneInfo(zone_name))
    return start.timestamp(), end.timestamp()


@pytest.mark.parametrize("zone, date, start, hours", [
    ("Pacific/Kiritimati", datetime.date(2024, 6, 15), utc(2024, 6, 14, 10), 24),  # UTC+14
    ("America/Los_Angeles", datetime.date(2024, 3, 10), utc(2024, 3, 10, 8), 23),  # spring forward
    ("America/Los_Angeles", datetime.date(2024, 11, 3), utc(2024, 11, 3, 7), 25),  # fall back
    ("America/Santiago", datetime.date(2024, 9, 8), utc(2024, 9, 8, 4), 23),  # midnight itself is skipped
    ("Pacific/Apia", datetime.date(2011, 12, 30), None, 0),  # Samoa skipped this whole day
])
def test_day_bounds(zone, date, start, hours):
    begin, end = span(date, zone)
    assert end - begin == hours * HOUR
    if start is not None:
        assert begin == start.timestamp()


@pytest.fixture
def kiritimati_day(git_repo):
    """Commits either side of both midnights of 2024-06-15 in Kiritimati (UTC+14), plus another author's."""
    repo = git_repo
    shas = {
        "before": repo.commit(utc(2024, 6, 14, 9, 59, 59)),  # 23:59:59 on the 14th, local
        "first": repo.commit(utc(2024, 6, 14, 10, 0, 0)),  # 00:00:00 on the 15th
        "other": repo.commit(utc(2024, 6, 14, 18), email="someone@else.org"),
        "last": repo.commit(utc(2024, 6, 15, 9, 59, 59)),  # 23:59:59 on the 15th
        "after": repo.commit(utc(2024, 6, 15, 10, 0, 0)),  # 00:00:00 on the 16th
    }
    return repo, shas


def test_git_source_takes_the_local_day_of_a_far_zone(kiritimati_day):
    repo, shas = kiritimati_day
    found = git_commits(datetime.date(2024, 6, 15), ZoneInfo("Pacific/Kiritimati"), cwd=repo.path)
    assert found == sorted([shas["first"], shas["last"]])
    # the same instants make another day in UTC: the zone decides
    found_utc = git_commits(datetime.date(2024, 6, 15), ZoneInfo("UTC"), cwd=repo.path)
    assert found_utc == sorted([shas["last"], shas["after"]])


def test_git_source_author_option_and_case(kiritimati_day):
    repo, shas = kiritimati_day
    zone = ZoneInfo("Pacific/Kiritimati")
    assert git_commits(datetime.date(2024, 6, 15), zone, author="SomeOne@Else.org", cwd=repo.path) == [shas["other"]]


def test_git_source_on_dst_days(git_repo):
    zone = ZoneInfo("America/Los_Angeles")
    late_spring = git_repo.commit(utc(2024, 3, 11, 6, 59, 59))  # 23:59:59 PDT on the 10th (a 23-hour day)
    next_spring = git_repo.commit(utc(2024, 3, 11, 7, 30))  # 00:30 on the 11th: inside a naive 24-hour day
    late_autumn = git_repo.commit(utc(2024, 11, 4, 7, 30))  # 23:30 PST on the 3rd (a 25-hour day)
    assert git_commits(datetime.date(2024, 3, 10), zone, cwd=git_repo.path) == [late_spring]
    assert git_commits(datetime.date(2024, 3, 11), zone, cwd=git_repo.path) == [next_spring]
    assert git_commits(datetime.date(2024, 11, 3), zone, cwd=git_repo.path) == [late_autumn]


def test_git_source_reads_every_branch_but_not_the_stash(git_repo):
    day, zone = datetime.date(2024, 5, 1), ZoneInfo("UTC")
    on_main = git_repo.commit(utc(2024, 5, 1, 9))
    git_repo.git("switch", "-q", "-c", "side")
    on_side = git_repo.commit(utc(2024, 5, 1, 10))
    git_repo.git("switch", "-q", "main")
    (git_repo.path / "notes.txt").write_text("draft")
    git_repo.git("add", "notes.txt")
    stamp = {"GIT_AUTHOR_DATE": f"{int(utc(2024, 5, 1, 11).timestamp())} +0000",
             "GIT_COMMITTER_DATE": f"{int(utc(2024, 5, 1, 11).timestamp())} +0000"}
    git_repo.git("stash", "-q", env=stamp)
    assert git_repo.git("stash", "list")  # the stash exists and is dated that day
    assert git_commits(day, zone, cwd=git_repo.path) == sorted([on_main, on_side])


def test_git_source_day_without_commits(git_repo):
    git_repo.commit(utc(2024, 5, 1, 9))
    assert git_commits(datetime.date(2024, 5, 2), ZoneInfo("UTC"), cwd=git_repo.path) == []


def test_git_source_outside_a_repository(tmp_path, clean_env):
    with pytest.raises(SourceError, match="^not a git repository: "):
        git_commits(datetime.date(2024, 5, 1), ZoneInfo("UTC"), cwd=tmp_path)


def test_git_source_without_an_author_email(git_repo):
    git_repo.git("config", "--unset", "user.email")
    with pytest.raises(SourceError, match="git config user.email"):
        git_commits(datetime.date(2024, 5, 1), ZoneInfo("UTC"), cwd=git_repo.path)


def test_list_source_file(tmp_path):
    listing = tmp_path / "shas.txt"
    listing.write_text(f"\n{'A' * 40}\n\n  {'b' * 40}  \n{'a' * 40}\n")
    assert listed_commits(str(listing)) == ["a" * 40, "b" * 40, "a" * 40]


def test_list_source_stdin(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{'c' * 40}\n{'d' * 40}\n"))
    assert listed_commits("-") == ["c" * 40, "d" * 40]


def test_list_source_names_the_bad_line(tmp_path):
    listing = tmp_path / "shas.txt"
    listing.write_text(f"{'a' * 40}\n\n{'b' * 39}\n{'c' * 40}\n")
    with pytest.raises(SourceError, match=r"shas.txt, line 3: not a 40-character commit SHA: 'b{39}'"):
        listed_commits(str(listing))


def test_list_source_missing_file(tmp_path):
    with pytest.raises(SourceError, match="cannot read commits from .*missing.txt"):
        listed_commits(str(tmp_path / "missing.txt"))


def test_none_source():
    assert collect("none", datetime.date(2024, 5, 1), ZoneInfo("UTC")) == DayCommits("none", ())


def test_auto_source(git_repo, tmp_path):
    outside = tmp_path / "plain"
    outside.mkdir()
    env = {}
    assert resolve_source("auto", environ=env, cwd=git_repo.path) == "git"
    assert resolve_source("auto", environ=env, cwd=outside) == "none"
    assert resolve_source("auto", user="octocat", environ=env, cwd=git_repo.path) == "github"
    assert resolve_source("auto", environ={"GITHUB_ACTIONS": "true"}, cwd=git_repo.path) == "github"
    assert resolve_source("auto", commits_file="-", environ={"GITHUB_ACTIONS": "true"}, cwd=outside) == "list"
    assert resolve_source("git", user="octocat", environ=env, cwd=outside) == "git"
    git_repo.git("config", "--unset", "user.email")  # a fresh clone on a fresh machine: whose commits?
    assert resolve_source("auto", environ=env, cwd=git_repo.path) == "none"
    assert resolve_source("auto", author="me@example.com", environ=env, cwd=git_repo.path) == "git"
