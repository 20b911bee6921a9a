"""Where the commits of a day, or of a range of days, come from: the local git history, a list, GitHub's commit
search, or nowhere.

A day is [local midnight, next local midnight) in an IANA zone, so it lasts 23 or 25 hours when the
clocks change. A range is read at once (one git log, one search) and its commits bucketed into its days; a single
day is the one-day range. Every failure is a `SourceError` whose text is the one line the user sees, and that text
never contains a token.
"""

import bisect
import dataclasses
import datetime
import json
import logging
import math
import os
import re
import subprocess
import sys
import time
import traceback
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from raccoon.day import NOT_A_SHA, SHA_PATTERN

SOURCES = ("auto", "git", "list", "github", "none")
PUBLIC_API_URL = "https://api.github.com"
SEARCH_PAGE_SIZE = 100  # the most GitHub's search returns per page
SEARCH_CAP = 1000  # GitHub's search lists the first 1000 results it matches, no more
INTEGRATION_REFUSAL = "Resource not accessible by integration"  # GitHub's 403 to a token it will not let search
TOKEN_CHARACTERS = re.compile(r"[\x21-\x7e]+")  # printable ASCII without spaces: every kind of GitHub token
TOKEN_REFUSED = f"GitHub refused the commit search to this token (403 {INTEGRATION_REFUSAL})"


class SourceError(Exception):
    """The commits could not be read; str() is the one-line message for the user."""


@dataclass(frozen=True)
class RangeCommits:
    source: str  # the source that answered: git, list, github or none
    days: dict[datetime.date, tuple[str, ...]]  # every day of the range in order, each with its sorted unique SHAs
    incomplete: str = ""  # why GitHub's answer may miss commits; empty when it is complete
    warnings: tuple[str, ...] = ()  # one line each, for the caller to show: how the source got its answer

    @classmethod
    def without_commits(cls, source: str, first: datetime.date, last: datetime.date) -> "RangeCommits":
        """Every day of first..last with no commits: what the none source finds, and what the date-only raccoons
        are painted from when a source fails."""
        return cls(source, {day: () for day in days_between(first, last)})


def day_bounds(date: datetime.date, zone: ZoneInfo) -> tuple[datetime.datetime, datetime.datetime]:
    """The day as [local midnight, next local midnight), aware datetimes in `zone`.

    A midnight skipped by a DST change resolves (fold=0) to the instant the clocks jumped, and a repeated
    midnight to its first occurrence. Compare the bounds with `.timestamp()`: Python compares two
    datetimes that share a tzinfo by wall clock, which is wrong across a DST change.
    """
    start = datetime.datetime.combine(date, datetime.time(), zone)
    end = datetime.datetime.combine(date + datetime.timedelta(days=1), datetime.time(), zone)
    return start, end


def range_bounds(first: datetime.date, last: datetime.date, zone: ZoneInfo) -> tuple[int, int]:
    """The days first..last as [start, end) in Unix seconds: first's local midnight to the midnight after last."""
    return int(day_bounds(first, zone)[0].timestamp()), int(day_bounds(last, zone)[1].timestamp())


def days_between(first: datetime.date, last: datetime.date) -> list[datetime.date]:
    """Every day first..last, in order."""
    return [first + datetime.timedelta(days=n) for n in range((last - first).days + 1)]


def bucket_by_day(dated_shas, first: datetime.date, last: datetime.date,
                  zone: ZoneInfo) -> dict[datetime.date, tuple[str, ...]]:
    """(Unix timestamp, SHA) pairs grouped by the local day they fall in, for every day first..last in order;
    pairs outside the range are dropped. A day's own bounds decide, so a DST day holds 23 or 25 hours."""
    dates = days_between(first, last)
    starts = [day_bounds(date, zone)[0].timestamp() for date in dates]
    start, end = range_bounds(first, last, zone)
    days = {date: set() for date in dates}
    for timestamp, sha in dated_shas:
        if start <= timestamp < end:  # bisect_right: a day skipped whole (zero hours long) gets nothing
            days[dates[bisect.bisect_right(starts, timestamp) - 1]].add(sha)
    return {date: tuple(sorted(shas)) for date, shas in days.items()}


def resolve_source(source: str, *, user: str | None = None, commits_file: str | None = None,
                   author: str | None = None, cwd: Path | None = None) -> str:
    """`auto` becomes list when a commits file is given, github when a login is given, git inside a repository
    that knows whose commits to read (--author, or git's author email), else none. Running in GitHub Actions changes
    nothing: without a login, github has no one to search for."""
    if source != "auto":
        return source
    if commits_file is not None:
        return "list"
    if user:
        return "github"
    try:
        probe = _git(["rev-parse", "--git-dir"], cwd)
    except SourceError:  # git is not installed: there is no history to read, as outside a repository
        return "none"
    if probe.returncode != 0:  # a repository git refuses to read (dubious ownership, say): reading it says why
        return "none" if "not a git repository" in probe.stderr else "git"
    return "git" if author or _git_email(cwd) else "none"


def collect_range(
    source: str,
    first: datetime.date,
    last: datetime.date,
    zone: ZoneInfo,
    *,
    commits_file: str | None = None,
    author: str | None = None,
    user: str | None = None,
    api_url: str = PUBLIC_API_URL,
    environ=os.environ,
    cwd: Path | None = None,
) -> RangeCommits:
    """The commits of every day first..last from `source` (already resolved: not auto), read in one pass."""
    if last < first:
        raise ValueError(f"a range of days must not end ({last}) before it starts ({first})")
    if source == "git":
        return RangeCommits("git", bucket_by_day(git_history(author=author, cwd=cwd), first, last, zone))
    if source == "list":
        if commits_file is None:
            raise SourceError("--source list needs --commits FILE (one SHA per line, - for stdin)")
        if first != last:
            raise SourceError("--source list gives one day's commits; a range of days needs git, github or none")
        return RangeCommits("list", {first: tuple(sorted(set(listed_commits(commits_file))))})
    if source == "github":
        if not user:
            raise SourceError("--source github needs --user LOGIN (whose commits to paint)")
        return github_commits(first, last, zone, user, api_url=api_url, token=environ.get("GITHUB_TOKEN") or None,
                              limits=GitHubLimits.from_env(environ))
    if source == "none":
        return RangeCommits.without_commits("none", first, last)
    raise SourceError(f"unknown commit source {source!r}: choose one of {', '.join(SOURCES)}")


# ---------------------------------------------------------------------------------------------- git


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _git(args: list[str], cwd: Path | None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, errors="replace")
    except FileNotFoundError:
        raise SourceError("git is not installed: use --source list, github or none") from None


def _git_email(cwd: Path | None) -> str:
    """The author email `git commit` records here, in git's order, where one is set (not guessed from the host's
    name as `git var GIT_AUTHOR_IDENT` may): $GIT_AUTHOR_EMAIL, author.email, user.email, $EMAIL; else ""."""
    email = os.environ.get("GIT_AUTHOR_EMAIL", "").strip()
    for key in ("author.email", "user.email"):
        email = email or _git(["config", key], cwd).stdout.strip()
    return email or os.environ.get("EMAIL", "").strip()


def git_history(*, author: str | None = None, cwd: Path | None = None) -> list[tuple[int, str]]:
    """(author timestamp, SHA) of every commit on any branch, tag or remote whose author email is `author`
    (default: the email `git commit` records as the author here), compared case-insensitively, from one `git log`.
    Stashes and notes are not work, and a commit without an author date cannot belong to a day."""
    probe = _git(["rev-parse", "--git-dir"], cwd)
    if probe.returncode != 0:
        reason = _first_line(probe.stderr) or "git rev-parse failed"
        if "not a git repository" in reason:
            raise SourceError(f"not a git repository: {Path(cwd or '.').resolve()} (use --source list, github or none)")
        raise SourceError(f"git cannot read this repository: {reason}")
    if author is None:
        author = _git_email(cwd)
        if not author:
            raise SourceError("no author email: set `git config user.email` or pass --author EMAIL")
    log = _git(["-c", "log.showSignature=false", "log", "-z", "--exclude=refs/stash", "--exclude=refs/notes/*",
                "--all", "--format=%H%x1f%at%x1f%ae"], cwd)  # -z: an email may hold any character but NUL
    if log.returncode != 0:
        raise SourceError(f"git log failed: {_first_line(log.stderr) or f'exit code {log.returncode}'}")
    wanted = author.strip().casefold()
    history = []
    for record in log.stdout.split("\0"):
        sha, _, rest = record.partition("\x1f")
        timestamp, _, email = rest.partition("\x1f")
        if email.casefold() == wanted and timestamp.isdigit():
            history.append((int(timestamp), sha))
    return history


# --------------------------------------------------------------------------------------------- list


def listed_commits(path: str) -> list[str]:
    """One SHA per line from a file, or from stdin when `path` is "-"; blank lines are skipped."""
    name = "stdin" if path == "-" else path
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SourceError(f"cannot read commits from {name}: {getattr(error, 'strerror', None) or error}") from None
    shas = []
    for number, line in enumerate(text.splitlines(), start=1):
        sha = line.strip().lower()
        if not sha:
            continue
        if not SHA_PATTERN.fullmatch(sha):
            raise SourceError(f"{name}, line {number}: {NOT_A_SHA}: {line.strip()[:70]!r}")
        shas.append(sha)
    return shas


# ------------------------------------------------------------------------------------------- github


@dataclass(frozen=True)
class GitHubLimits:
    """Bounds on every wait, so a scheduled run fails within minutes instead of hanging.

    Read from RACCOON_GITHUB_RETRIES, RACCOON_GITHUB_BACKOFF, RACCOON_GITHUB_MAX_WAIT, RACCOON_GITHUB_TIMEOUT.
    """

    retries: int = 3  # retries after a server error, a dropped connection or a short rate-limit wait
    backoff: float = 2.0  # the first retry is immediate, the next waits `backoff` seconds, then twice that...
    max_wait: float = 60.0  # the longest single wait for a rate limit to reset; a longer one fails at once
    timeout: int = 20  # seconds per HTTP request

    @classmethod
    def from_env(cls, environ) -> "GitHubLimits":
        fields = {"retries": ("RACCOON_GITHUB_RETRIES", int), "backoff": ("RACCOON_GITHUB_BACKOFF", float),
                  "max_wait": ("RACCOON_GITHUB_MAX_WAIT", float), "timeout": ("RACCOON_GITHUB_TIMEOUT", int)}
        values = {}
        for limit, (name, kind) in fields.items():
            if environ.get(name):
                try:
                    values[limit] = kind(environ[name])
                except ValueError:
                    raise SourceError(f"{name} must be a {kind.__name__}, got {environ[name]!r}") from None
                if not math.isfinite(values[limit]) or values[limit] < (1 if limit == "timeout" else 0):
                    raise SourceError(f"{name} must be {'1' if limit == 'timeout' else 'zero'} or more, "
                                      f"got {environ[name]!r}")
        return cls(**values)


def search_query(login: str, start: int, end: int, zone: ZoneInfo) -> str:
    """`author:LOGIN author-date:FIRST..LAST` for the seconds [start, end) (Unix time): both ends inclusive, each
    written in `zone` with its own UTC offset (they differ across a DST change), as GitHub's search syntax
    accepts: YYYY-MM-DDTHH:MM:SS+HH:MM."""
    first, last = (datetime.datetime.fromtimestamp(second, zone).isoformat(timespec="seconds")
                   for second in (start, end - 1))
    return f"author:{login} author-date:{first}..{last}"


def rate_limit_wait(headers, now: float) -> float | None:
    """Seconds GitHub asks us to wait, from Retry-After or an exhausted X-RateLimit-Reset; None if it asks nothing."""
    headers = {name.lower(): str(value).strip() for name, value in headers.items()}
    if headers.get("retry-after", "").isdigit():
        return float(headers["retry-after"])
    reset = headers.get("x-ratelimit-reset", "")
    if headers.get("x-ratelimit-remaining") == "0" and reset.isdigit():
        return max(0.0, int(reset) - now + 1)  # +1: the reset happens somewhere within that second
    return None


def _reset_time(headers, now: float) -> str:
    """When the rate limit resets, as UTC: X-RateLimit-Reset if given, else now + Retry-After."""
    headers = {name.lower(): str(value).strip() for name, value in headers.items()}
    if headers.get("x-ratelimit-reset", "").isdigit():
        reset = int(headers["x-ratelimit-reset"])
    elif headers.get("retry-after", "").isdigit():
        reset = now + int(headers["retry-after"])
    else:
        return "an unknown time"
    return datetime.datetime.fromtimestamp(reset, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _bounded_retry(limits: GitHubLimits):
    """PyGithub's GithubRetry, made to wait out 429 rate limits too and never to wait past `limits`."""
    from github.GithubException import RateLimitExceededExceedsMaxWait
    from github.GithubRetry import GithubRetry
    from urllib3.util.retry import Retry

    class BoundedRetry(GithubRetry):
        reset_wait = 0.0

        def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
            limited = response is not None and response.status in (403, 429)
            wait = rate_limit_wait(response.headers, time.time()) if limited else None
            if wait is None:  # server errors, network errors, other 403s: GithubRetry's own rules
                return super().increment(method, url, response, error, _pool, _stacktrace)
            if wait > self.max_rate_limit_wait:
                raise RateLimitExceededExceedsMaxWait(response.status, None, dict(response.headers), wait=wait)
            retry = Retry.increment(self, method, url, response, error, _pool, _stacktrace)
            retry.reset_wait = wait
            return retry

        def get_backoff_time(self) -> float:
            return max(super().get_backoff_time(), self.reset_wait)

    return BoundedRetry(
        total=limits.retries,
        backoff_factor=limits.backoff / 2,  # urllib3 waits 0, then factor * 2**(n - 1) before the nth retry
        backoff_max=limits.max_wait,
        status_forcelist=[429, *range(500, 600)],  # GithubRetry adds 403 and tells rate limits from refusals
        max_rate_limit_wait=limits.max_wait,
        secondary_rate_wait=min(60.0, limits.max_wait),
        retry_after_max=math.ceil(limits.max_wait),
        raise_on_status=False,  # after the last retry PyGithub sees the response and raises with its headers
    )


def _is_http_url(url: str) -> bool:
    """An http(s) URL with a host, a port in range if any, and no whitespace: what a request can be made to."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # raises ValueError when out of range
    except ValueError:  # a malformed host or port
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not any(c.isspace() for c in url)


class _TokenRefused(Exception):
    """GitHub refused the search to the token, in a way that lets it be made anonymously instead."""


def github_commits(first: datetime.date, last: datetime.date, zone: ZoneInfo, login: str, *,
                   api_url: str = PUBLIC_API_URL, token: str | None = None,
                   limits: GitHubLimits = GitHubLimits()) -> RangeCommits:
    """Commits authored by `login` during the days first..last, through one GitHub commit search of the whole
    range: every page up to the search's own cap of 1000 results, each commit put in the day of its author date,
    SHAs de-duplicated (a commit shows up once per fork that holds it). A range matching more than the cap is
    searched in halves, and those in halves, until every part fits.

    The search covers default branches only. Without a token the search is anonymous: public repositories only,
    10 searches a minute. A token refused the search with 403 "Resource not accessible by integration" (the
    Actions GITHUB_TOKEN, in some setups) sees public commits only anyway: the search is made anonymously, with
    a warning.
    """
    if not _is_http_url(api_url):
        raise SourceError(f"--api-url must be an http(s) URL such as {PUBLIC_API_URL}, got {api_url!r}")
    api_url = api_url.rstrip("/")
    token = (token or "").strip() or None  # as `$(cat token.txt)` may leave it: a trailing CR
    if token and not TOKEN_CHARACTERS.fullmatch(token):  # requests would echo it in the error it raises
        raise SourceError("GITHUB_TOKEN holds a space, a control character or a non-ASCII character, which no "
                          "GitHub token does: check how it was set (it is not shown here)")
    try:
        return _search(first, last, zone, login, api_url, token, limits)
    except _TokenRefused:
        return _search_anonymously(first, last, zone, login, api_url, limits)
    except SourceError as error:
        message = str(error)
        raise SourceError(message.replace(token, "***") if token else message) from None


def _search_anonymously(first, last, zone, login, api_url, limits) -> RangeCommits:
    """The search again, without the token GitHub refused: so no message here can hold it."""
    try:
        found = _search(first, last, zone, login, api_url, None, limits)
    except SourceError as error:
        raise SourceError(f"{TOKEN_REFUSED}, and the anonymous search failed: {error}") from None
    refused = f"{TOKEN_REFUSED}; searched anonymously (public commits only)"
    return dataclasses.replace(found, warnings=(refused, *found.warnings))


@dataclass
class _Found:
    """What the searches of a range found: (author timestamp, SHA) pairs, and why they may fall short."""

    commits: list[tuple[float, str]] = field(default_factory=list)
    parts: int = 0  # searches whose results were taken: more than one when the range matched more than the cap
    timed_out: bool = False  # GitHub said a page's results may be incomplete
    shortfall: str = ""  # a search listed fewer commits than it matched


def _search(first, last, zone, login, api_url, token, limits) -> RangeCommits:
    try:
        import github
        import requests
    except ModuleNotFoundError:
        raise SourceError("--source github needs PyGithub, a dependency of raccoon-action: pip install PyGithub") \
            from None

    github.set_log_level(logging.WARNING)  # PyGithub logs every retry to stderr at INFO; we report failures ourselves
    client = github.Github(
        auth=github.Auth.Token(token) if token else None,
        base_url=api_url,
        timeout=limits.timeout,
        per_page=SEARCH_PAGE_SIZE,
        retry=_bounded_retry(limits),
        seconds_between_requests=None,  # one GET at a time; the retry rules wait out rate limits, within `limits`
    )
    found = _Found()
    try:
        _search_span(client, login, *range_bounds(first, last, zone), zone, api_url, found)
    except requests.exceptions.RequestException as error:  # first: some (InvalidHeader, InvalidURL) are ValueErrors
        reason = "timed out" if isinstance(error, requests.exceptions.Timeout) else "connection failed"
        raise SourceError(f"cannot reach the GitHub API at {api_url}: {reason} after {limits.retries} retries") \
            from None
    except (ValueError, TypeError, AttributeError, KeyError, github.BadAttributeException,
            github.IncompletableObject) as error:  # first: IncompletableObject is a GithubException too
        if not _malformed_answer(error):
            raise
        raise SourceError(f"GitHub API at {api_url} returned malformed JSON") from None
    except github.GithubException as error:
        if token and error.status == 403 and _github_message(error) == INTEGRATION_REFUSAL:
            raise _TokenRefused from None
        raise SourceError(_explain(error, login, api_url, token, limits)) from None
    finally:
        client.close()
    timed_out = "GitHub's search timed out and says its results may be incomplete" if found.timed_out else ""
    period = first.isoformat() if first == last else f"{first} to {last}"
    split = (f"the commits of {period} were more than GitHub's search returns at once ({SEARCH_CAP}); "
             f"searched in {found.parts} parts")
    return RangeCommits("github", bucket_by_day(found.commits, first, last, zone),
                        incomplete=timed_out or found.shortfall, warnings=(split,) if found.parts > 1 else ())


def _search_span(client, login: str, start: int, end: int, zone: ZoneInfo, api_url: str, found: _Found) -> None:
    """Add the commits authored in the seconds [start, end) to `found`: every page of one search or, when the
    search matches more than GitHub lists, its two halves searched alike. A single second still over the cap is
    taken as GitHub lists it, and the shortfall noted."""
    results = client.search_commits(search_query(login, start, end, zone))
    seen = 0
    for seen, item in enumerate(results, start=1):
        if seen == 1 and _matched(results) > SEARCH_CAP and end - start > 1:
            middle = (start + end) // 2
            _search_span(client, login, start, middle, zone, api_url, found)
            _search_span(client, login, middle, end, zone, api_url, found)
            return
        if (seen - 1) % SEARCH_PAGE_SIZE == 0:  # a page's first item (GitHub fills all but the last page)
            found.timed_out |= bool(results.incomplete_results)
        found.commits.append(_dated_sha(item, api_url))
    found.parts += 1
    found.timed_out |= bool(results.incomplete_results)
    matched = _matched(results)
    if matched > seen and not found.shortfall:
        found.shortfall = (f"GitHub's search listed {seen} of the {matched} commits it matched "
                           f"(it lists at most {SEARCH_CAP} per search)")


def _matched(results) -> int:
    """How many commits the search matched, by GitHub's count; 0 when the answer holds no count."""
    total = results.totalCount
    return total if isinstance(total, int) else 0


def _dated_sha(item, api_url: str) -> tuple[float, str]:
    """A search result's author date (Unix time) and lowercase SHA; either one missing or malformed means the
    answer is not a commit search."""
    sha = item.sha
    if not isinstance(sha, str) or not SHA_PATTERN.fullmatch(sha.lower()):
        raise SourceError(f"GitHub API at {api_url} returned a malformed commit SHA: {str(sha)[:70]!r}")
    date = getattr(getattr(item.commit, "author", None), "date", None)
    if not isinstance(date, datetime.datetime) or date.utcoffset() is None:
        raise SourceError(f"GitHub API at {api_url} returned commit {sha.lower()} without a valid author date")
    return date.timestamp(), sha.lower()


def _malformed_answer(error: Exception) -> bool:
    """Whether `error` is PyGithub failing on an answer that is not a commit search: invalid JSON, a field
    missing or of the wrong type, or JSON of another shape, which PyGithub's parsing trips over with built-in
    errors. The same built-in errors raised in our own code are bugs, and must not pass for GitHub's fault."""
    import github

    if isinstance(error, (json.JSONDecodeError, github.BadAttributeException, github.IncompletableObject)):
        return True
    raised_in = Path(traceback.extract_tb(error.__traceback__)[-1].filename)
    return raised_in.is_relative_to(Path(github.__file__).parent)


def _github_message(error) -> str:
    """The first line of the message in GitHub's JSON answer to a failed request, else ""."""
    return _first_line(str(error.data.get("message", "")))[:200] if isinstance(error.data, dict) else ""


def _explain(error, login: str, api_url: str, token: str | None, limits: GitHubLimits) -> str:
    """One line for a GitHub API failure, from its status, headers and message: never from the request,
    which holds the token."""
    status, headers, message = error.status, error.headers or {}, _github_message(error)
    if status in (403, 429) and (rate_limit_wait(headers, time.time()) is not None or "rate limit" in message.lower()):
        return (f"GitHub API rate limit reached; it resets at {_reset_time(headers, time.time())} "
                f"(waits are capped at {limits.max_wait:g}s by RACCOON_GITHUB_MAX_WAIT)")
    if status == 401:
        if token:
            return f"GITHUB_TOKEN was rejected by {api_url} (401 bad credentials)"
        return f"{api_url} requires a token: set GITHUB_TOKEN (401)"
    if status == 422:
        return f"GitHub cannot search the commits of {login!r}: no such user, or not visible with this token (422)"
    if status >= 500:
        return f"GitHub API at {api_url} failed with {status} (gave up after {limits.retries} retries)"
    return f"GitHub API at {api_url} answered {status}{': ' + message if message else ''}"
