"""The GitHub source, driven through the real PyGithub client against a fake GitHub API over HTTP on 127.0.0.1."""

import datetime
import hashlib
import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fake_github import FakeCommit

from raccoon.commits import RangeCommits, collect_range
from raccoon.day import DayRecord

pytestmark = pytest.mark.usefixtures("tiny_model")

TOKEN = "ghp_DoNotLeakThisToken0123456789abcdef"
UTC = datetime.timezone.utc
DAY = "2024-06-15"


def sha(n: int) -> str:
    return hashlib.sha1(f"commit {n}".encode()).hexdigest()


def commits_on(day: datetime.datetime, count: int, login: str = "octocat", first: int = 0) -> list[FakeCommit]:
    return [FakeCommit(sha(first + n), login, day + datetime.timedelta(seconds=30 * n)) for n in range(count)]


@pytest.fixture
def paint_github(raccoon, fake_github, tmp_path, monkeypatch):
    """`raccoon paint --source github --json` against the fake, with GITHUB_TOKEN set unless token=None."""

    def run(*extra, user="octocat", date=DAY, tz="UTC", token=TOKEN, api_url=None):
        if token:
            monkeypatch.setenv("GITHUB_TOKEN", token)
        else:
            monkeypatch.delenv("GITHUB_TOKEN", raising=False)
        return raccoon("paint", "--source", "github", "--user", user, "--api-url", api_url or fake_github.url,
                       "--date", date, "--tz", tz, "--out", tmp_path / "raccoon.png", "--json", *extra)

    return run


def search(fake) -> RangeCommits:
    """The GitHub source as `raccoon paint` calls it, with GITHUB_TOKEN set, for what its report does not show."""
    day = datetime.date.fromisoformat(DAY)
    return collect_range("github", day, day, ZoneInfo("UTC"), user="octocat", api_url=fake.url,
                         environ={**os.environ, "GITHUB_TOKEN": TOKEN})


def assert_clean_failure(run, tmp_path, *fragments):
    """Exit 2, one line on stderr naming the problem, no traceback, no file, no token anywhere."""
    assert run.code == 2
    assert run.out == ""
    lines = run.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("raccoon: error: "), run.err
    for fragment in fragments:
        assert fragment in lines[0]
    assert TOKEN not in run.err and TOKEN not in run.out
    assert list(tmp_path.glob("*raccoon.png*")) == []


def test_250_commits_on_three_pages_give_the_seed_of_the_same_list(paint_github, raccoon, fake_github, tmp_path):
    fake_github.token = TOKEN
    fake_github.commits = commits_on(datetime.datetime(2024, 6, 15, 1, tzinfo=UTC), 250)
    fake_github.commits += commits_on(datetime.datetime(2024, 6, 16, 1, tzinfo=UTC), 5, first=1000)  # next day
    fake_github.commits += commits_on(datetime.datetime(2024, 6, 15, 2, tzinfo=UTC), 7, "hubot", first=2000)
    found = paint_github()
    assert found.code == 0, found.err
    report = json.loads(found.out)
    assert report["source"] == "github" and report["commits"] == 250 and report["incomplete"] is False

    pages = [path for path, _ in fake_github.requests]
    assert len(pages) == 3 and "page=2" in pages[1] and "page=3" in pages[2]
    assert {authorization for _, authorization in fake_github.requests} == {f"token {TOKEN}"}

    shuffled = [commit.sha.upper() for commit in fake_github.commits[:250]]
    random.Random(7).shuffle(shuffled)
    listed = raccoon("paint", "--source", "list", "--commits", "-", "--date", DAY, "--tz", "UTC",
                     "--out", tmp_path / "listed.png", "--json", stdin="\n".join(shuffled))
    assert listed.code == 0, listed.err
    assert json.loads(listed.out)["seed"] == report["seed"]
    assert (tmp_path / "listed.png").read_bytes() == (tmp_path / "raccoon.png").read_bytes()


def test_an_empty_day_paints_the_date_only_raccoon(paint_github, fake_github):
    fake_github.commits = commits_on(datetime.datetime(2024, 6, 14, 12, tzinfo=UTC), 3)
    run = paint_github()
    assert run.code == 0, run.err
    report = json.loads(run.out)
    assert report["commits"] == 0 and report["source"] == "github"
    assert report["seed"] == DayRecord.of(datetime.date(2024, 6, 15), []).seed().hex()


def test_days_either_side_of_midnight_in_a_far_zone(paint_github, fake_github):
    def at(*args):
        return FakeCommit(sha(len(args) * 100 + args[2] * 10 + args[3]), "octocat",
                          datetime.datetime(*args, tzinfo=UTC))

    before, first = at(2024, 6, 14, 9, 59, 59), at(2024, 6, 14, 10, 0, 0)  # midnight on the 15th in Kiritimati
    last, after = at(2024, 6, 15, 9, 59, 59), at(2024, 6, 15, 10, 0, 0)  # midnight on the 16th
    fake_github.commits = [before, first, last, after]
    seeds = {}
    for date in ("2024-06-14", "2024-06-15", "2024-06-16"):
        run = paint_github(date=date, tz="Pacific/Kiritimati")
        assert run.code == 0, run.err
        seeds[date] = json.loads(run.out)
    assert [seeds[d]["commits"] for d in seeds] == [1, 2, 1]
    expected = DayRecord.of(datetime.date(2024, 6, 15), [first.sha, last.sha]).seed().hex()
    assert seeds["2024-06-15"]["seed"] == expected
    query = fake_github.requests[1][0]
    assert "2024-06-15T00%3A00%3A00%2B14%3A00..2024-06-15T23%3A59%3A59%2B14%3A00" in query


def test_query_on_a_dst_day_writes_each_end_with_its_own_offset(paint_github, fake_github):
    fake_github.commits = commits_on(datetime.datetime(2024, 3, 10, 12, tzinfo=UTC), 1)
    assert paint_github(date="2024-03-10", tz="America/Los_Angeles").code == 0
    assert "2024-03-10T00%3A00%3A00-08%3A00..2024-03-10T23%3A59%3A59-07%3A00" in fake_github.requests[0][0]


def test_sha256_commits_count_whole(paint_github, fake_github):
    """A repository in git's SHA-256 object format names its commits with 64 hex digits."""
    day = datetime.datetime(2024, 6, 15, 8, tzinfo=UTC)
    sha256 = hashlib.sha256(b"commit in a sha256 repository").hexdigest()
    fake_github.commits = [FakeCommit(sha256, "octocat", day), *commits_on(day, 1)]
    run = paint_github()
    assert run.code == 0, run.err
    report = json.loads(run.out)
    assert report["commits"] == 2
    assert report["seed"] == DayRecord.of(day.date(), [sha256, sha(0)]).seed().hex()


def test_commits_found_in_several_repositories_count_once(paint_github, fake_github):
    day = datetime.datetime(2024, 6, 15, 8, tzinfo=UTC)
    fake_github.commits = commits_on(day, 3) + [FakeCommit(sha(0), "octocat", day, repo="fork/site")]
    run = paint_github()
    assert json.loads(run.out)["commits"] == 3


def test_incomplete_results_warn_and_are_reported(paint_github, fake_github):
    fake_github.commits = commits_on(datetime.datetime(2024, 6, 15, 1, tzinfo=UTC), 120)
    fake_github.incomplete = True
    run = paint_github()
    assert run.code == 0
    report = json.loads(run.out)
    assert report["incomplete"] is True and report["commits"] == 120
    assert run.err.startswith("raccoon: warning: ") and "incomplete" in run.err and len(run.err.splitlines()) == 1


def test_a_day_over_githubs_cap_of_1000_results_is_searched_in_halves(paint_github, fake_github):
    fake_github.commits = commits_on(datetime.datetime(2024, 6, 15, 0, tzinfo=UTC), 1050)  # 00:00 to 08:45
    run = paint_github()
    assert run.code == 0, run.err
    report = json.loads(run.out)
    assert report["commits"] == 1050 and report["incomplete"] is False
    # the day and its first half match 1050: one page each; then 00:00-06:00 (720, 8 pages), 06:00-12:00
    # (330, 4 pages) and 12:00-24:00 (none, 1 page)
    assert len(fake_github.requests) == 1 + 1 + 8 + 4 + 1
    assert run.err == ("raccoon: warning: the commits of 2024-06-15 were more than GitHub's search returns at once "
                       "(1000); searched in 3 parts\n")


def test_search_stops_at_githubs_cap_of_1000_results_within_one_second(paint_github, fake_github):
    moment = datetime.datetime(2024, 6, 15, 12, tzinfo=UTC)
    fake_github.commits = [FakeCommit(sha(n), "octocat", moment) for n in range(1050)]
    run = paint_github()
    assert run.code == 0, run.err
    report = json.loads(run.out)
    assert report["commits"] == 1000 and report["incomplete"] is True
    assert "listed 1000 of the 1050 commits it matched (it lists at most 1000 per search)" in run.err


def test_anonymous_search_when_no_token_is_set(paint_github, fake_github):
    fake_github.commits = commits_on(datetime.datetime(2024, 6, 15, 1, tzinfo=UTC), 2)
    run = paint_github(token=None)
    assert run.code == 0 and json.loads(run.out)["commits"] == 2
    assert fake_github.requests[0][1] is None


def rate_limited(fake, status, reset_in, times=1, message="API rate limit exceeded for user ID 1."):
    reset = int(time.time()) + reset_in
    fake.script(status, {"message": message, "documentation_url": "https://docs.github.com/rest/rate-limit"},
                {"X-RateLimit-Limit": "30", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset),
                 "X-RateLimit-Resource": "search"}, times=times)
    return datetime.datetime.fromtimestamp(reset, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@pytest.mark.parametrize("status", [403, 429])
def test_rate_limit_too_far_away_fails_at_once_naming_the_reset(paint_github, fake_github, tmp_path, status):
    reset = rate_limited(fake_github, status, reset_in=3600)
    started = time.monotonic()
    run = paint_github()
    assert time.monotonic() - started < 2
    assert_clean_failure(run, tmp_path, "rate limit", reset)
    assert len(fake_github.requests) == 1


def test_rate_limit_that_never_lifts_fails_after_bounded_retries(paint_github, fake_github, tmp_path):
    reset = rate_limited(fake_github, 429, reset_in=-5, times=10)
    run = paint_github()
    assert_clean_failure(run, tmp_path, "rate limit", reset)
    assert len(fake_github.requests) == 4  # the request and RACCOON_GITHUB_RETRIES' default 3 retries


def test_short_rate_limit_is_waited_out(paint_github, fake_github):
    fake_github.commits = commits_on(datetime.datetime(2024, 6, 15, 1, tzinfo=UTC), 2)
    fake_github.script(429, {"message": "You have exceeded a secondary rate limit."}, {"Retry-After": "1"})
    started = time.monotonic()
    run = paint_github()
    assert run.code == 0, run.err
    assert 1 <= time.monotonic() - started < 3
    assert json.loads(run.out)["commits"] == 2 and len(fake_github.requests) == 2


def test_server_error_is_retried(paint_github, fake_github):
    fake_github.commits = commits_on(datetime.datetime(2024, 6, 15, 1, tzinfo=UTC), 2)
    fake_github.script(502, "<html><body>Bad gateway</body></html>", {"Content-Type": "text/html"}, times=2)
    run = paint_github()
    assert run.code == 0, run.err
    assert json.loads(run.out)["commits"] == 2 and len(fake_github.requests) == 3


def test_server_errors_give_up_after_bounded_retries(paint_github, fake_github, tmp_path, monkeypatch):
    monkeypatch.setenv("RACCOON_GITHUB_RETRIES", "2")
    fake_github.script(503, {"message": "Service unavailable"}, times=10)
    run = paint_github()
    assert_clean_failure(run, tmp_path, "503", "2 retries")
    assert len(fake_github.requests) == 3


def test_bad_token(paint_github, fake_github, tmp_path):
    fake_github.token = "the-right-one"
    assert_clean_failure(paint_github(), tmp_path, "GITHUB_TOKEN was rejected", "401")


def test_a_token_read_with_line_ends_around_it_is_used(paint_github, fake_github):
    fake_github.token = TOKEN
    run = paint_github(token=f"\r\n{TOKEN}\r\n")  # `$(cat token.txt)` of a file saved on Windows keeps the \r
    assert run.code == 0, run.err
    assert json.loads(run.out)["source"] == "github" and fake_github.requests


@pytest.mark.parametrize("token", [f"{TOKEN}\rX", f"{TOKEN} {TOKEN}", f"ghs_Sécrèt€{TOKEN}"],
                         ids=["carriage-return-inside", "space-inside", "not-ascii"])
def test_a_token_no_request_can_carry_fails_before_any_request_without_showing_it(paint_github, fake_github,
                                                                                   tmp_path, token):
    run = paint_github(token=token)
    assert_clean_failure(run, tmp_path, "GITHUB_TOKEN holds a space, a control character or a non-ASCII character")
    assert "Sécrèt" not in run.err and fake_github.requests == []


@pytest.mark.parametrize("url", ["http://[::1", "http://127.0.0.1:99999", "http://local host/api", "ftp://host"])
def test_an_api_url_no_request_can_go_to_fails_in_one_line(paint_github, fake_github, tmp_path, url):
    assert_clean_failure(paint_github(api_url=url), tmp_path, "--api-url must be an http(s) URL", repr(url))


def test_missing_token_where_one_is_required(paint_github, fake_github, tmp_path):
    fake_github.require_token = True
    assert_clean_failure(paint_github(token=None), tmp_path, "set GITHUB_TOKEN", "401")


def test_unknown_user(paint_github, tmp_path):
    assert_clean_failure(paint_github(user="no-such-user"), tmp_path, "'no-such-user'", "422")


def test_network_down(paint_github, tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run = paint_github(api_url=f"http://127.0.0.1:{port}/api/v3")
    assert_clean_failure(run, tmp_path, "cannot reach the GitHub API", f"127.0.0.1:{port}")


@pytest.mark.parametrize("body", [
    '{"total_count": 3, "incomplete_results": false, "items": [{"sha": "',
    "<html>Unicorn!</html>",
    '[1, 2, 3]',
    '{"total_count": 1, "incomplete_results": false, "items": [{"sha": 42}]}',
    '{"total_count": 1, "incomplete_results": false, "items": [{"sha": "not-a-sha"}]}',
    '{"total_count": 1, "incomplete_results": false, "items": [{"sha": "%s"}]}' % ("a" * 63),
    '{"total_count": 1, "incomplete_results": false, "items": [{"score": 1.0}]}',  # no sha, no url to fetch it from
    '{"total_count": 1, "incomplete_results": false, "items": 42}',
])
def test_malformed_json(paint_github, fake_github, tmp_path, body):
    fake_github.script(200, body)
    assert_clean_failure(paint_github(), tmp_path, "malformed")


@pytest.mark.parametrize("helper", ["search_query", "rate_limit_wait"])
def test_a_bug_of_ours_is_not_passed_off_as_malformed_json(fake_github, monkeypatch, helper):
    """A TypeError raised by our code, before the request or inside PyGithub's call to our retry rules (which a
    429 brings about), is a bug to see as it is, not a fault of GitHub's answer."""
    def broken(*args, **kwargs):
        raise TypeError("a bug in raccoon")

    monkeypatch.setattr(f"raccoon.commits.{helper}", broken)
    fake_github.script(429, {"message": "You have exceeded a secondary rate limit."}, {"Retry-After": "1"})  # calls it
    with pytest.raises(TypeError, match="a bug in raccoon"):
        search(fake_github)


def test_search_refused_to_the_token_is_made_anonymously_with_a_warning(paint_github, fake_github):
    """The Actions GITHUB_TOKEN gets 403 "Resource not accessible by integration" for search in some setups."""
    fake_github.refused_token = TOKEN
    fake_github.commits = commits_on(datetime.datetime(2024, 6, 15, 1, tzinfo=UTC), 2)
    warning = ("GitHub refused the commit search to this token (403 Resource not accessible by integration); "
               "searched anonymously (public commits only)")
    found = search(fake_github)
    assert found.days == {datetime.date.fromisoformat(DAY): tuple(sorted([sha(0), sha(1)]))} and found.source == "github"
    assert found.warnings == (warning,)
    assert [authorization for _, authorization in fake_github.requests] == [f"token {TOKEN}", None]
    run = paint_github()
    assert run.code == 0, run.err
    assert json.loads(run.out)["commits"] == 2
    assert run.err == f"raccoon: warning: {warning}\n"
    assert TOKEN not in run.out + run.err


def test_search_refused_to_the_token_and_failing_anonymously_fails_in_one_line(paint_github, fake_github, tmp_path):
    fake_github.refused_token = TOKEN
    reset = rate_limited(fake_github, 403, reset_in=3600)  # anonymous searches get 10 a minute
    run = paint_github()
    assert_clean_failure(run, tmp_path, "refused the commit search to this token (403 Resource not accessible by "
                         "integration), and the anonymous search failed: GitHub API rate limit reached", reset)
    assert [authorization for _, authorization in fake_github.requests] == [f"token {TOKEN}", None]


def test_on_error_date_only_paints_the_date_and_says_so(paint_github, fake_github, tmp_path):
    fake_github.token = "the-right-one"
    run = paint_github("--on-error", "date-only")
    assert run.code == 0
    report = json.loads(run.out)
    assert report["fallback"].startswith("GITHUB_TOKEN was rejected") and report["on_error"] == "date-only"
    assert report["commits"] == 0
    assert report["seed"] == DayRecord.of(datetime.date(2024, 6, 15), []).seed().hex()
    assert run.err.startswith("raccoon: warning: GITHUB_TOKEN was rejected") and "date-only" in run.err
    assert TOKEN not in run.err + run.out
    assert (tmp_path / "raccoon.png").is_file()


def test_a_login_that_is_not_one_is_refused_before_any_request(paint_github, fake_github, tmp_path):
    run = paint_github(user="octocat author-date:>2000-01-01")
    assert_clean_failure(run, tmp_path, "not a GitHub login")
    assert fake_github.requests == []


def test_incomplete_flag_on_an_empty_answer(paint_github, fake_github):
    fake_github.incomplete = True
    run = paint_github()
    assert run.code == 0 and json.loads(run.out)["incomplete"] is True


def test_standalone_fake_server(raccoon, tmp_path, monkeypatch):
    """The container test of the Action starts the fake as a script; it must serve the same answers."""
    listing = tmp_path / "commits.txt"
    listing.write_text("".join(f"{sha(n)} octocat 2024-06-15T0{n}:00:00+00:00\n" for n in range(3)))
    server = subprocess.Popen([sys.executable, str(Path(__file__).with_name("fake_github.py")), "--port", "0",
                               "--commits-file", str(listing), "--token", TOKEN, "--require-token"],
                              stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
        run = raccoon("paint", "--user", "octocat", "--api-url", url, "--date", DAY, "--tz", "UTC",
                      "--out", tmp_path / "r.png", "--json")
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert run.code == 0, run.err
    report = json.loads(run.out)
    assert report["source"] == "github" and report["commits"] == 3
