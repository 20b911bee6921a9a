"""A fake of GitHub's commit search API, served over real HTTP on 127.0.0.1.

It answers GET <prefix>/search/commits the way GitHub documents it: `q` holds `author:LOGIN` and
`author-date:START..END` (ISO 8601 with offsets, both ends inclusive); the answer is JSON
{"total_count", "incomplete_results", "items"} with `per_page`/`page` and a Link header (next, last, first,
prev), each item holding its SHA and `commit.author.date` (the date the commit was registered under, written as
GitHub writes it); only the first 1000 results can be paged to; a wrong token gets 401 "Bad credentials" and an
unknown user 422 "Validation Failed". A token the search is refused to, as GitHub refuses it to the Actions
GITHUB_TOKEN in some setups, gets 403 "Resource not accessible by integration" before anything else. Tests
queue scripted replies (rate limits, server errors, broken JSON) that are served, in order, before the real
answers.

Standalone, for the container test of the Action (binds 127.0.0.1 only):

    python tests/fake_github.py --port 8765 --commits-file commits.txt [--token T] [--require-token] [--incomplete]

where each line of the commits file is `<sha> <login> <author date, ISO 8601 with offset>`.
"""

import argparse
import collections
import datetime
import json
import math
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SEARCH_CAP = 1000  # GitHub lets a search be paged through its first 1000 results only


@dataclass(frozen=True)
class FakeCommit:
    sha: str
    login: str
    date: datetime.datetime  # the author date, timezone-aware
    repo: str = "octo/site"


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    headers: dict = field(default_factory=dict)


def read_commits_file(path) -> list[FakeCommit]:
    commits = []
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                sha, login, date = line.split()
                commits.append(FakeCommit(sha, login, datetime.datetime.fromisoformat(date)))
    return commits


class FakeGitHub:
    """The fake server: `url` is the API base to hand to --api-url (GitHub Enterprise style, /api/v3)."""

    def __init__(self, commits=(), *, token=None, refused_token=None, require_token=False, users=(), incomplete=False,
                 port=0):
        self.commits = list(commits)
        self.token = token  # a request carrying any other token gets 401
        self.refused_token = refused_token  # a request carrying it gets 403 "Resource not accessible by integration"
        self.require_token = require_token  # else a request with no token is anonymous, as on github.com
        self.users = set(users)  # logins that exist besides the commits' authors
        self.incomplete = incomplete
        self.scripted = collections.deque()
        self.requests = []  # (path with query, Authorization header) of every search request
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/v3"

    def script(self, status: int, body=b"", headers=None, times: int = 1):
        """Serve this reply to the next `times` search requests, before any real answer."""
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        for _ in range(times):
            self.scripted.append(Reply(status, body, dict(headers or {})))

    def start(self) -> "FakeGitHub":
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def answer(self, path: str, authorization: str | None, host: str) -> Reply:
        self.requests.append((path, authorization))
        parts = urllib.parse.urlsplit(path)
        if not parts.path.endswith("/search/commits"):
            return _json_reply(404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
        presented = authorization.split(" ", 1)[1] if authorization and " " in authorization else None
        if presented is not None and presented == self.refused_token:
            return _json_reply(403, {"message": "Resource not accessible by integration",
                                     "documentation_url": "https://docs.github.com/rest/search/search#search-commits",
                                     "status": "403"})
        if self.scripted:
            return self.scripted.popleft()
        if (self.token is not None and presented is not None and presented != self.token) or (
            self.require_token and presented is None
        ):
            message = "Bad credentials" if presented else "Requires authentication"
            return _json_reply(401, {"message": message, "documentation_url": "https://docs.github.com/rest"})
        return self.search(parts, host)

    def search(self, parts, host: str) -> Reply:
        params = urllib.parse.parse_qs(parts.query)
        terms = dict(term.split(":", 1) for term in params.get("q", [""])[0].split() if ":" in term)
        login, dates = terms.get("author"), terms.get("author-date", "")
        known = self.users | {commit.login.lower() for commit in self.commits}
        if not login or ".." not in dates or login.lower() not in known:
            return _json_reply(422, {
                "message": "Validation Failed",
                "errors": [{"message": "The listed users cannot be searched either because the users do not exist "
                                       "or you do not have permission to view the users.",
                            "resource": "Search", "field": "q", "code": "invalid"}],
                "documentation_url": "https://docs.github.com/v3/search/",
            })
        start, end = (datetime.datetime.fromisoformat(bound) for bound in dates.split(".."))
        matched = [c for c in self.commits if c.login.lower() == login.lower() and start <= c.date <= end]
        per_page = min(int(params.get("per_page", ["30"])[0]), 100)
        page = int(params.get("page", ["1"])[0])
        if (page - 1) * per_page >= SEARCH_CAP:
            return _json_reply(422, {"message": "Only the first 1000 search results are available",
                                     "documentation_url": "https://docs.github.com/v3/search/"})
        reachable = matched[:SEARCH_CAP]
        items = reachable[(page - 1) * per_page: page * per_page]
        body = {
            "total_count": len(matched),
            "incomplete_results": self.incomplete,
            "items": [_item(commit, host) for commit in items],
        }
        headers = {"X-RateLimit-Limit": "30", "X-RateLimit-Remaining": "29", "X-RateLimit-Resource": "search",
                   "X-RateLimit-Reset": str(int(time.time()) + 60)}
        links = _links(parts, host, page, math.ceil(len(reachable) / per_page), per_page, params["q"][0])
        if links:
            headers["Link"] = links
        return _json_reply(200, body, headers)


def _json_reply(status: int, body: dict, headers=None) -> Reply:
    return Reply(status, json.dumps(body).encode(), dict(headers or {}))


def _links(parts, host: str, page: int, last: int, per_page: int, query: str) -> str:
    def link(number, rel):
        params = urllib.parse.urlencode({"q": query, "per_page": per_page, "page": number})
        return f'<http://{host}{parts.path}?{params}>; rel="{rel}"'

    links = []
    if page < last:
        links += [link(page + 1, "next"), link(last, "last")]
    if page > 1:
        links += [link(1, "first"), link(page - 1, "prev")]
    return ", ".join(links)


def github_date(date: datetime.datetime) -> str:
    """An author date as commit search writes it: milliseconds, and the author's offset, or Z for UTC."""
    text = date.isoformat(timespec="milliseconds")
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


def _item(commit: FakeCommit, host: str) -> dict:
    """One search result, shaped as GitHub's documented commit-search item (the fields a client may read)."""
    api = f"http://{host}/api/v3/repos/{commit.repo}"
    person = {"name": commit.login, "email": f"{commit.login}@users.noreply.github.com",
              "date": github_date(commit.date)}
    user = {"login": commit.login, "id": 1, "type": "User", "url": f"http://{host}/api/v3/users/{commit.login}"}
    return {
        "url": f"{api}/commits/{commit.sha}",
        "sha": commit.sha,
        "html_url": f"https://github.com/{commit.repo}/commit/{commit.sha}",
        "comments_url": f"{api}/commits/{commit.sha}/comments",
        "commit": {"url": f"{api}/git/commits/{commit.sha}", "author": person, "committer": person,
                   "message": "work", "comment_count": 0},
        "author": user,
        "committer": user,
        "parents": [],
        "repository": {"id": 1, "name": commit.repo.split("/")[1], "full_name": commit.repo, "private": False,
                       "owner": user, "url": api},
        "score": 1.0,
    }


def _handler_for(fake: FakeGitHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle(self):
            try:
                super().handle()
            except ConnectionError:  # a client that gives up may hang up on a kept-alive connection
                pass

        def do_GET(self):
            reply = fake.answer(self.path, self.headers.get("Authorization"), self.headers.get("Host", ""))
            self.send_response(reply.status)
            headers = {"Content-Type": "application/json; charset=utf-8", **reply.headers}
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        def log_message(self, format, *args):  # keep test output quiet
            pass

    return Handler


def main(argv=None):
    parser = argparse.ArgumentParser(description="Fake GitHub commit search on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--commits-file", help="lines of: <sha> <login> <ISO 8601 author date>")
    parser.add_argument("--token", help="the only token accepted (requests without a token stay anonymous)")
    parser.add_argument("--require-token", action="store_true", help="answer 401 to requests without a token")
    parser.add_argument("--incomplete", action="store_true", help="set incomplete_results in every answer")
    args = parser.parse_args(argv)
    commits = read_commits_file(args.commits_file) if args.commits_file else []
    fake = FakeGitHub(commits, token=args.token, require_token=args.require_token, incomplete=args.incomplete,
                      port=args.port)
    print(fake.url, flush=True)
    try:
        fake.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        fake.server.server_close()


if __name__ == "__main__":
    main()
