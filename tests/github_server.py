"""A local HTTP server on 127.0.0.1 speaking the slice of GitHub's REST API we call.

Real sockets, real HTTP: issue comments (list with Link pagination, create,
update), check runs (create, update), bearer-token auth, and a queue of
rate-limit answers (403 secondary limit, 429, x-ratelimit-reset) to inject.
`user` is who the token is: None for a workflow's GITHUB_TOKEN (`GET /user` is
403, comments are written by github-actions[bot]), else a user's login.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class FakeGitHub:
    def __init__(self, token: str = "test-token", repo: str = "acme/taxonomy", user: str | None = None):
        self.token, self.repo, self.user = token, repo, user
        self.comments: dict[int, list[dict]] = {}
        self.pulls: dict[int, dict] = {}  # number -> {"head": {"sha": ...}, ...}
        self.requests: list[tuple[str, str]] = []
        self.inject: list[tuple[int, dict, dict]] = []  # (status, headers, body) answered before the next requests
        self._next_id = 1000
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status, body, headers=None):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method):
                length = int(self.headers.get("content-length") or 0)
                payload = json.loads(self.rfile.read(length)) if length else None
                with server._lock:
                    server.requests.append((method, self.path))
                    if server.inject:
                        return self._answer(*_reorder(server.inject.pop(0)))
                if self.headers.get("authorization") != f"Bearer {server.token}":
                    return self._answer(401, {"message": "Bad credentials"})
                status, body, headers = server.route(method, self.path, payload, self.headers)
                self._answer(status, body, headers)

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_PATCH(self):
                self._handle("PATCH")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    def add_comment(self, number: int, body: str, user: str = "someone") -> dict:
        comment = {"id": self._id(), "body": body,
                   "user": {"login": user, "type": "Bot" if user.endswith("[bot]") else "User"},
                   "html_url": f"https://github.com/{self.repo}/pull/{number}#issuecomment-{self._next_id}"}
        self.comments.setdefault(number, []).append(comment)
        return comment

    def route(self, method, path, payload, headers):
        parts = urlsplit(path)
        query = parse_qs(parts.query)
        repo = re.escape(self.repo)
        with self._lock:
            if parts.path == "/user" and method == "GET":
                if self.user is None:
                    return 403, {"message": "Resource not accessible by integration"}, {}
                return 200, {"login": self.user, "type": "User"}, {}
            if (m := re.fullmatch(rf"/repos/{repo}/pulls/(\d+)", parts.path)) and method == "GET":
                pull = self.pulls.get(int(m.group(1)))
                return (200, {"number": int(m.group(1)), **pull}, {}) if pull else (404, {"message": "Not Found"}, {})
            if m := re.fullmatch(rf"/repos/{repo}/issues/(\d+)/comments", parts.path):
                number = int(m.group(1))
                if method == "GET":
                    per_page = int(query.get("per_page", ["30"])[0])
                    page = int(query.get("page", ["1"])[0])
                    items = self.comments.get(number, [])
                    chunk = items[(page - 1) * per_page: page * per_page]
                    link = {}
                    if page * per_page < len(items):
                        link = {"link": f'<{self.url}{parts.path}?per_page={per_page}&page={page + 1}>; rel="next", '
                                        f'<{self.url}{parts.path}?per_page={per_page}&page=1>; rel="first"'}
                    return 200, chunk, link
                if method == "POST":
                    if not payload or "body" not in payload:
                        return 422, {"message": "Validation Failed"}, {}
                    if len(payload["body"]) > 65536:
                        return 422, {"message": "Body is too long (maximum is 65536 characters)"}, {}
                    return 201, self.add_comment(number, payload["body"], self.user or "github-actions[bot]"), {}
            if (m := re.fullmatch(rf"/repos/{repo}/issues/comments/(\d+)", parts.path)) and method == "PATCH":
                for comments in self.comments.values():
                    for c in comments:
                        if c["id"] == int(m.group(1)):
                            c["body"] = payload["body"]
                            return 200, c, {}
                return 404, {"message": "Not Found"}, {}
        return 404, {"message": "Not Found"}, {}


def _reorder(item):
    status, headers, body = item
    return status, body, headers
