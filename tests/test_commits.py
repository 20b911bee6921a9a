"""Day bounds and the git, list, none and auto sources, against real git repositories built in tmp_path."""

import datetime
import io
import os
import subprocess
from zoneinfo import ZoneInfo

import pytest

from raccoon.commits import RangeCommits, SourceError, collect_range, day_bounds, listed_commits, resolve_source
from raccoon.day import DayRecord

UTC = datetime.timezone.utc
HOUR = 3600


def utc(*args) -> datetime.datetime:
    return datetime.datetime(*args, tzinfo=UTC)


def git_commits(date: datetime.date, zone: ZoneInfo, **options) -> list[str]:
    """The git source's SHAs for the day, as `raccoon paint` reads them."""
    return list(collect_range("git", date, date, zone, **options).days[date])


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


@pytest.fixture
def sha256_repo(monkeypatch, request):
    """A repository in git's SHA-256 object format, whose commit SHAs are 64 hex digits."""
    monkeypatch.setenv("GIT_DEFAULT_HASH", "sha256")
    return request.getfixturevalue("git_repo")


def test_git_source_in_a_sha256_repository(sha256_repo):
    day = datetime.date(2024, 5, 1)
    sha = sha256_repo.commit(utc(2024, 5, 1, 9))
    assert len(sha) == 64
    found = collect_range("git", day, day, ZoneInfo("UTC"), cwd=sha256_repo.path)
    assert found == RangeCommits("git", {day: (sha,)})
    assert DayRecord.of(day, found.days[day]).encode().endswith(f"\n{sha}\n".encode())


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


def test_git_source_reads_the_author_email_git_commits_with(git_repo, monkeypatch):
    day, zone = datetime.date(2024, 5, 1), ZoneInfo("UTC")
    mine = git_repo.commit(utc(2024, 5, 1, 9), email="me@work.example")
    git_repo.commit(utc(2024, 5, 1, 10))  # user.email's
    git_repo.git("config", "author.email", "me@work.example")  # what `git commit` records as the author here
    assert git_commits(day, zone, cwd=git_repo.path) == [mine]
    git_repo.git("config", "--unset", "author.email")
    git_repo.git("config", "--unset", "user.email")
    monkeypatch.setenv("EMAIL", "me@work.example")  # git's last resort, before guessing from the host's name
    assert git_commits(day, zone, cwd=git_repo.path) == [mine]
    assert resolve_source("auto", cwd=git_repo.path) == "git"


def test_git_source_reads_past_records_that_are_not_its_lines(git_repo):
    """Another author's email may hold a form feed or a line separator (git allows any character but NUL and
    newline), and an imported commit may have no author date: neither stops a day's commits from being read."""
    day, zone = datetime.date(2024, 5, 1), ZoneInfo("UTC")
    git_repo.commit(utc(2024, 5, 1, 8), email="bob\x0cjr\u2028@else.example")
    mine = git_repo.commit(utc(2024, 5, 1, 9))
    tree = git_repo.git("rev-parse", "HEAD^{tree}")
    undated = (f"tree {tree}\nauthor Me <me@example.com>\ncommitter Me <me@example.com> 0 +0000\n\nold\n")
    odd = subprocess.run(["git", "hash-object", "-t", "commit", "--literally", "-w", "--stdin"], cwd=git_repo.path,
                         input=undated, capture_output=True, text=True, check=True).stdout.strip()
    git_repo.git("update-ref", "refs/heads/imported", odd)
    assert git_commits(day, zone, cwd=git_repo.path) == [mine]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to give the repository away")
def test_auto_source_in_a_repository_git_refuses_says_why(git_repo):
    for path in [git_repo.path, *git_repo.path.rglob("*")]:
        os.chown(path, 4321, 4321, follow_symlinks=False)  # another user's: git refuses it (dubious ownership)
    assert resolve_source("auto", cwd=git_repo.path) == "git"
    with pytest.raises(SourceError, match="^git cannot read this repository: .*dubious ownership"):
        git_commits(datetime.date(2024, 5, 1), ZoneInfo("UTC"), cwd=git_repo.path)


def test_list_source_file(tmp_path):
    listing = tmp_path / "shas.txt"
    listing.write_text(f"\n{'A' * 40}\n\n  {'b' * 40}  \n{'a' * 40}\n{'C' * 64}\n")
    assert listed_commits(str(listing)) == ["a" * 40, "b" * 40, "a" * 40, "c" * 64]


def test_list_source_stdin(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{'c' * 40}\n{'d' * 40}\n"))
    assert listed_commits("-") == ["c" * 40, "d" * 40]


@pytest.mark.parametrize("bad", ["b" * 39, "b" * 63, "b" * 65], ids=len)
def test_list_source_names_the_bad_line(tmp_path, bad):
    listing = tmp_path / "shas.txt"
    listing.write_text(f"{'a' * 40}\n\n{bad}\n{'c' * 64}\n")
    with pytest.raises(SourceError) as raised:
        listed_commits(str(listing))
    assert str(raised.value).endswith(f"shas.txt, line 3: not a full commit SHA (40 or 64 hex digits): {bad!r}")


def test_list_source_missing_file(tmp_path):
    with pytest.raises(SourceError, match="cannot read commits from .*missing.txt"):
        listed_commits(str(tmp_path / "missing.txt"))


def test_none_source():
    day = datetime.date(2024, 5, 1)
    assert collect_range("none", day, day, ZoneInfo("UTC")) == RangeCommits("none", {day: ()})


def test_auto_source(git_repo, tmp_path):
    outside = tmp_path / "plain"
    outside.mkdir()
    assert resolve_source("auto", cwd=git_repo.path) == "git"
    assert resolve_source("auto", cwd=outside) == "none"
    assert resolve_source("auto", user="octocat", cwd=git_repo.path) == "github"
    assert resolve_source("auto", commits_file="-", user="octocat", cwd=git_repo.path) == "list"
    assert resolve_source("git", user="octocat", cwd=outside) == "git"
    git_repo.git("config", "--unset", "user.email")  # a fresh clone on a fresh machine: whose commits?
    assert resolve_source("auto", cwd=git_repo.path) == "none"
    assert resolve_source("auto", author="me@example.com", cwd=git_repo.path) == "git"


def test_auto_source_without_git_installed_paints_the_date_alone(git_repo, tmp_path, monkeypatch):
    """A fresh machine may have no git at all: auto then reads nothing, as outside a repository; only an explicit
    --source git says that git is missing."""
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on it
    assert resolve_source("auto", author="me@example.com", cwd=git_repo.path) == "none"
    with pytest.raises(SourceError, match="git is not installed"):
        collect_range("git", datetime.date(2024, 5, 1), datetime.date(2024, 5, 1), ZoneInfo("UTC"),
                      author="me@example.com", cwd=git_repo.path)


def test_auto_source_in_github_actions_searches_github_only_for_a_login(git_repo, tmp_path, monkeypatch):
    """GitHub Actions alone names no one to search for: without a login, auto decides as anywhere else."""
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    outside = tmp_path / "plain"
    outside.mkdir()
    assert resolve_source("auto", cwd=git_repo.path) == "git"
    assert resolve_source("auto", cwd=outside) == "none"
    assert resolve_source("auto", user="octocat", cwd=outside) == "github"
    assert resolve_source("auto", commits_file="-", cwd=outside) == "list"
