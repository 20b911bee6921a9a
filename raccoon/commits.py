"""Where a day's commits come from: the local git history, a list, GitHub's commit search, or nowhere.

A day is [local midnight, next local midnight) in an IANA zone, so it lasts 23 or 25 hours when the
clocks change. Every source answers with SHAs; `DayRecord` normalises them. Every failure is a
`SourceError` whose text is the one line the user sees, and that text never contains a token.
"""

import datetime
import logging
import math
import os
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from raccoon.day import SHA_PATTERN

SOURCES = ("auto", "git", "list", "github", "none")
PUBLIC_API_URL = "https://api.github.com"
SEARCH_PAGE_SIZE = 100  # the most GitHub's search returns per page


class SourceError(Exception):
    """The day's commits could not be read; str() is the one-line message for the user."""


@dataclass(frozen=True)
class DayCommits:
    source: str  # the source that answered: git, list, github or none
    shas: tuple[str, ...]
    incomplete: str = ""  # why GitHub's answer may miss commits; empty when it is complete


def day_bounds(date: datetime.date, zone: ZoneInfo) -> tuple[datetime.datetime, datetime.datetime]:
    """The day as [local midnight, next local midnight), aware datetimes in `zone`.

    A midnight skipped by a DST change resolves (fold=0) to the instant the clocks jumped, and a repeated
    midnight to its first occurrence. Compare the bounds with `.timestamp()`: Python compares two
    datetimes that share a tzinfo by wall clock, which is wrong across a DST change.
    """
    start = datetime.datetime.combine(date, datetime.time(), zone)
    end = datetime.datetime.combine(date + datetime.timedelta(days=1), datetime.time(), zone)
    return start, end


def resolve_source(source: str, *, user: str | None = None, commits_file: str | None = None,
                   author: str | None = None, environ=os.environ, cwd: Path | None = None) -> str:
    """`auto` becomes list when a commits file is given, github when a login is given or we run in GitHub
    Actions, git inside a repository that knows whose commits to read (--author or user.email), else none."""
    if source != "auto":
        return source
    if commits_file is not None:
        return "list"
    if user or environ.get("GITHUB_ACTIONS"):
        return "github"
    if _git(["rev-parse", "--git-dir"], cwd).returncode == 0 and (author or _git_email(cwd)):
        return "git"
    return "none"


def collect(
    source: str,
    date: datetime.date,
    zone: ZoneInfo,
    *,
    commits_file: str | None = None,
    author: str | None = None,
    user: str | None = None,
    api_url: str = PUBLIC_API_URL,
    environ=os.environ,
    cwd: Path | None = None,
) -> DayCommits:
    """The day's commits from `source` (already resolved: not auto)."""
    if source == "git":
        return DayCommits("git", tuple(git_commits(date, zone, author=author, cwd=cwd)))
    if source == "list":
        if commits_file is None:
            raise SourceError("--source list needs --commits FILE (one SHA per line, - for stdin)")
        return DayCommits("list", tuple(listed_commits(commits_file)))
    if source == "github":
        if not user:
            raise SourceError("--source github needs --user LOGIN (whose commits to paint)")
        return github_commits(date, zone, user, api_url=api_url, token=environ.get("GITHUB_TOKEN") or None,
                              limits=GitHubLimits.from_env(environ))
    if source == "none":
        return DayCommits("none", ())
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
    return _git(["config", "user.email"], cwd).stdout.strip()


def git_commits(date: datetime.date, zone: ZoneInfo, *, author: str | None = None,
                cwd: Path | None = None) -> list[str]:
    """Commits on any branch, tag or remote whose author date falls in the day and whose author email is
    `author` (default: `git config user.email`), compared case-insensitively. Stashes and notes are not work."""
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
    log = _git(["-c", "log.showSignature=false", "log", "--exclude=refs/stash", "--exclude=refs/notes/*", "--all",
                "--format=%H%x1f%at%x1f%ae"], cwd)
    if log.returncode != 0:
        raise SourceError(f"git log failed: {_first_line(log.stderr) or f'exit code {log.returncode}'}")
    start, end = (bound.timestamp() for bound in day_bounds(date, zone))
    wanted = author.strip().casefold()
    shas = set()
    for line in log.stdout.splitlines():
        sha, timestamp, email = line.split("\x1f", 2)
        if email.casefold() == wanted and start <= int(timestamp) < end:
            shas.add(sha)
    return sorted(shas)


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
            raise SourceError(f"{name}, line {number}: not a 40-character commit SHA: {line.strip()[:60]!r}")
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
        for field, (name, kind) in fields.items():
            if environ.get(name):
                try:
                    values[field] = kind(environ[name])
                except ValueError:
                    raise SourceError(f"{name} must be a {kind.__name__}, got {environ[name]!r}") from None
                if not math.isfinite(values[field]) or values[field] < 0:
                    raise SourceError(f"{name} must be zero or more, got {environ[name]!r}")
        return cls(**values)


def search_query(login: str, date: datetime.date, zone: ZoneInfo) -> str:
    """`author:LOGIN author-date:START..END`, both ends inclusive, each written with its own UTC offset
    (they differ on a DST day), as GitHub's search syntax accepts: YYYY-MM-DDTHH:MM:SS+HH:MM."""
    start, end = day_bounds(date, zone)
    last_second = datetime.datetime.fromtimestamp(end.timestamp() - 1, zone)
    first, last = start.isoformat(timespec="seconds"), last_second.isoformat(timespec="seconds")
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


def github_commits(date: datetime.date, zone: ZoneInfo, login: str, *, api_url: str = PUBLIC_API_URL,
                   token: str | None = None, limits: GitHubLimits = GitHubLimits()) -> DayCommits:
    """Commits authored by `login` during the day, through GitHub's commit search: every page up to the
    search's own cap of 1000 results, SHAs de-duplicated (a commit shows up once per fork that holds it).

    The search covers default branches only. Without a token the search is anonymous: public repositories only,
    10 searches a minute.
    """
    parts = urllib.parse.urlsplit(api_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SourceError(f"--api-url must be an http(s) URL such as {PUBLIC_API_URL}, got {api_url!r}")
    try:
        return _search(date, zone, login, api_url.rstrip("/"), token, limits)
    except SourceError as error:
        message = str(error)
        raise SourceError(message.replace(token, "***") if token else message) from None


def _search(date, zone, login, api_url, token, limits) -> DayCommits:
    try:
        import github
        import requests
    except ModuleNotFoundError:
        raise SourceError("--source github needs PyGithub: pip install 'raccoon-action[github]'") from None

    github.set_log_level(logging.WARNING)  # PyGithub logs every retry to stderr at INFO; we report failures ourselves
    client = github.Github(
        auth=github.Auth.Token(token) if token else None,
        base_url=api_url,
        timeout=limits.timeout,
        per_page=SEARCH_PAGE_SIZE,
        retry=_bounded_retry(limits),
        seconds_between_requests=None,  # at most 10 sequential GETs: nothing to spread out
    )
    shas, seen, incomplete = set(), 0, False
    try:
        results = client.search_commits(search_query(login, date, zone))
        for seen, item in enumerate(results, start=1):
            if (seen - 1) % SEARCH_PAGE_SIZE == 0:  # a page's first item (GitHub fills all but the last page)
                incomplete |= bool(results.incomplete_results)
            sha = item.sha
            if not isinstance(sha, str) or not SHA_PATTERN.fullmatch(sha.lower()):
                raise SourceError(f"GitHub API at {api_url} returned a malformed commit SHA: {str(sha)[:60]!r}")
            shas.add(sha.lower())
        incomplete |= bool(results.incomplete_results)
        total = results.totalCount
    except github.GithubException as error:
        raise SourceError(_explain(error, login, api_url, token, limits)) from None
    except requests.exceptions.RequestException as error:
        reason = "timed out" if isinstance(error, requests.exceptions.Timeout) else "connection failed"
        raise SourceError(f"cannot reach the GitHub API at {api_url}: {reason} after {limits.retries} retries") \
            from None
    except (ValueError, KeyError, TypeError, AttributeError, github.BadAttributeException):
        # invalid JSON, or JSON not shaped like a search answer
        raise SourceError(f"GitHub API at {api_url} returned malformed JSON") from None
    finally:
        client.close()
    if incomplete:
        reason = "GitHub's search timed out and says its results may be incomplete"
    elif isinstance(total, int) and total > seen:
        reason = f"GitHub's search returns at most 1000 results and {total} matched"
    else:
        reason = ""
    return DayCommits("github", tuple(sorted(shas)), incomplete=reason)


def _explain(error, login: str, api_url: str, token: str | None, limits: GitHubLimits) -> str:
    """One line for a GitHub API failure, from its status, headers and message: never from the request,
    which holds the token."""
    status, headers = error.status, error.headers or {}
    message = _first_line(str(error.data.get("message", "")))[:200] if isinstance(error.data, dict) else ""
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
