"""A stand-in for the GitHub REST API's issue comments, on 127.0.0.1, for the plan comment.

Serves the three endpoints plan.yml's comment script uses: list an issue's
comments (paginated with `per_page`, at most 100, and `page`, with a Link
header whose URLs use the `/repositories/<id>/` form GitHub itself sends),
create a comment (as `github-actions[bot]`, the GITHUB_TOKEN's user) and
update one. Like GitHub, it lets the token edit anyone's comment: write
access allows that, so only the script's own matching keeps a person's
comment safe. It checks the token, refuses bodies over 65536 characters, can
refuse a method with a given status, and logs every request.
"""

from __future__ import annotations

import json
import re
import threading
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

TOKEN = "ghs_" + "0" * 36
OWNER, REPO, REPO_ID = "homelab", "homelab-tunnel", 700000001
BOT = {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"}
MAX_BODY = 65536  # GitHub: "body is too long (maximum is 65536 characters)"


def user(login: str) -> dict[str, Any]:
    """A person, or an app when the login ends in [bot]."""
    kind = "Bot" if login.endswith("[bot]") else "User"
    return {"login": login, "id": zlib.crc32(login.encode()), "type": kind}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    authorization: str | None


@dataclass
class FakeGitHub:
    """Issue comments of one repository; `requests` lists what was asked, in order."""

    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    # method -> (status, message): answer every such request with that error.
    refuse: dict[str, tuple[int, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._next_id = 2_000_000_001
        self._clock = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeGitHub:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- state ---------------------------------------------------------------

    def add_comment(self, issue: int, body: str, author: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            comment_id = self._next_id
            self._next_id += 1
            now = self._tick()
            comment = {
                "id": comment_id,
                "url": f"{self.url}/repos/{OWNER}/{REPO}/issues/comments/{comment_id}",
                "html_url": f"https://github.com/{OWNER}/{REPO}/pull/{issue}#issuecomment-{comment_id}",
                "issue_url": f"{self.url}/repos/{OWNER}/{REPO}/issues/{issue}",
                "body": body,
                "user": author,
                "created_at": now,
                "updated_at": now,
            }
            self.comments.setdefault(issue, []).append(comment)
            return comment

    def comment(self, comment_id: int) -> dict[str, Any] | None:
        for comments in self.comments.values():
            for comment in comments:
                if comment["id"] == comment_id:
                    return comment
        return None

    def calls(self) -> list[str]:
        """The requests as 'METHOD path?query', for compact assertions."""
        return [
            f"{r.method} {r.path}" + (f"?{urlencode(r.query)}" if r.query else "")
            for r in self.requests
        ]

    def _tick(self) -> str:
        self._clock += 1
        return f"2026-11-30T10:{self._clock // 60:02d}:{self._clock % 60:02d}Z"


_LIST = re.compile(
    r"/(?:repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)|repositories/(?P<id>\d+))"
    r"/issues/(?P<issue>\d+)/comments"
)
_ONE = re.compile(r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/issues/comments/(?P<comment>\d+)")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-github"

    def log_message(self, *_args: Any) -> None:  # keep test output clean
        pass

    @property
    def fake(self) -> FakeGitHub:
        return self.server.fake  # type: ignore[attr-defined, no-any-return]

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def _handle(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._send(400, {"message": "Problems parsing JSON"})
            return
        authorization = self.headers.get("Authorization")
        self.fake.requests.append(Request(method, parts.path, query, body, authorization))

        if authorization not in (f"token {TOKEN}", f"Bearer {TOKEN}"):
            self._send(401, {"message": "Bad credentials"})
        elif method in self.fake.refuse:
            status, message = self.fake.refuse[method]
            self._send(status, {"message": message})
        elif (match := _LIST.fullmatch(parts.path)) and self._ours(match) and method != "PATCH":
            issue = int(match["issue"])
            if method == "GET":
                self._list(issue, query)
            elif self._valid(body):
                self._send(201, self.fake.add_comment(issue, body["body"], BOT))
        elif (match := _ONE.fullmatch(parts.path)) and self._ours(match) and method == "PATCH":
            comment = self.fake.comment(int(match["comment"]))
            if comment is None:
                self._send(404, {"message": "Not Found"})
            elif self._valid(body):
                comment["body"] = body["body"]
                comment["updated_at"] = self.fake._tick()
                self._send(200, comment)
        else:
            self._send(404, {"message": "Not Found"})

    def _ours(self, match: re.Match[str]) -> bool:
        if match.groupdict().get("id"):
            return int(match["id"]) == REPO_ID
        return (match["owner"], match["repo"]) == (OWNER, REPO)

    def _valid(self, body: Any) -> bool:
        text = body.get("body") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text:
            self._send(422, {"message": 'Invalid request.\n\n"body" wasn\'t supplied.'})
            return False
        if len(text) > MAX_BODY:
            self._send(422, {"message": "Validation Failed", "errors": [{"field": "body"}]})
            return False
        return True

    def _list(self, issue: int, query: dict[str, str]) -> None:
        per_page = min(int(query.get("per_page", 30)), 100)
        page = max(int(query.get("page", 1)), 1)
        comments = self.fake.comments.get(issue, [])
        last = max(1, -(-len(comments) // per_page))
        links = []
        base = f"{self.fake.url}/repositories/{REPO_ID}/issues/{issue}/comments"
        if page < last:
            links.append(f'<{base}?per_page={per_page}&page={page + 1}>; rel="next"')
            links.append(f'<{base}?per_page={per_page}&page={last}>; rel="last"')
        if page > 1:
            links.append(f'<{base}?per_page={per_page}&page={page - 1}>; rel="prev"')
            links.append(f'<{base}?per_page={per_page}&page=1>; rel="first"')
        start = (page - 1) * per_page
        self._send(200, comments[start : start + per_page], link=", ".join(links))

    def _send(self, status: int, payload: Any, link: str = "") -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if link:
            self.send_header("Link", link)
        self.end_headers()
        self.wfile.write(data)
