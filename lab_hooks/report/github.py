"""A small GitHub REST client: the few endpoints the PR bot calls, done carefully.

- Secondary rate limits (403/429): wait as GitHub says (`retry-after`, else until
  `x-ratelimit-reset` when `x-ratelimit-remaining` is 0, else one minute doubling),
  up to a total wait budget; then a one-line `GitHubError`.
- Lists follow the `Link: <…>; rel="next"` header.
- The sticky comment: ours carries a hidden marker AND was written by the token's
  own identity (anyone can paste the marker: a comment planted by the PR's author
  must never receive the bot's reports); update it in place, or create it.
"""

from __future__ import annotations

import re
import time
from typing import Callable, Iterator

import httpx

from lab_hooks import __version__
from lab_hooks.errors import LabHooksError

API_URL = "https://api.github.com"
# Who comments with a workflow's GITHUB_TOKEN; that token cannot read `GET /user`.
ACTIONS_BOT = "github-actions[bot]"


class GitHubError(LabHooksError):
    """A request that failed for good; the message is one line."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class GitHub:
    def __init__(self, token: str, repo: str, api_url: str = API_URL, *, max_wait: float = 600.0,
                 timeout: float = 30.0, sleep: Callable[[float], None] = time.sleep,
                 transport: httpx.BaseTransport | None = None, login: str | None = None):
        if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repo or ""):
            raise GitHubError(f"repository must be OWNER/NAME, got {repo!r}")
        self.repo = repo
        self.login = login  # the token's identity; looked up when first needed
        self.max_wait = max_wait
        self.sleep = sleep
        self.http = httpx.Client(
            base_url=api_url.rstrip("/"), timeout=timeout, transport=transport,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
                     "X-GitHub-Api-Version": "2022-11-28", "User-Agent": f"lab-hooks/{__version__}"},
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "GitHub":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- transport -----------------------------------------------------------
    def request(self, method: str, url: str, **kwargs) -> httpx.Response:
        waited, backoff = 0.0, 60.0
        while True:
            try:
                response = self.http.request(method, url, **kwargs)
            except httpx.HTTPError as e:
                raise GitHubError(f"{method} {url}: {type(e).__name__}: {e}") from None
            wait = _rate_limit_wait(response, backoff)
            if wait is None:
                break
            if waited + wait > self.max_wait:
                raise GitHubError(f"{method} {url}: rate limited by GitHub; gave up after waiting {waited:.0f} s "
                                  f"(next wait {wait:.0f} s exceeds the {self.max_wait:.0f} s budget)")
            self.sleep(wait)
            waited += wait
            backoff *= 2
        if response.status_code >= 400:
            raise GitHubError(f"{method} {url}: HTTP {response.status_code}: {_message(response)}",
                              response.status_code)
        return response

    def paginate(self, url: str, params: dict | None = None) -> Iterator[dict]:
        params = {"per_page": 100, **(params or {})}
        while url:
            response = self.request("GET", url, params=params)
            yield from response.json()
            url, params = _next_link(response.headers.get("link", "")), None
            if url and httpx.URL(url).host != self.http.base_url.host:
                raise GitHubError(f"pagination link points off the API host: {url[:100]}")  # keep the token home

    def pull(self, number: int) -> dict:
        """The pull request (its `head.sha` is where it is now)."""
        return self.request("GET", f"/repos/{self.repo}/pulls/{int(number)}").json()

    # -- issue comments ------------------------------------------------------
    def issue_comments(self, number: int) -> Iterator[dict]:
        return self.paginate(f"/repos/{self.repo}/issues/{int(number)}/comments")

    def identity(self) -> str:
        """The login the token comments as: its user's (`GET /user`), or, for an Actions or
        App installation token, which may not read /user, `github-actions[bot]` (a custom
        App's `<slug>[bot]` is passed as `login`)."""
        if self.login is None:
            try:
                self.login = str(self.request("GET", "/user").json()["login"])
            except GitHubError as e:
                if e.status not in (403, 404):
                    raise
                self.login = ACTIONS_BOT
        return self.login

    def is_ours(self, comment: dict) -> bool:
        user = comment.get("user") or {}
        login = self.identity()
        return user.get("login") == login and (user.get("type") == "Bot") == login.endswith("[bot]")

    def find_comment(self, number: int, marker: str) -> dict | None:
        """Our comment: the first that carries `marker` and that the token's identity wrote."""
        return next((c for c in self.issue_comments(number)
                     if marker in (c.get("body") or "") and self.is_ours(c)), None)

    def upsert_comment(self, number: int, body: str, marker: str) -> dict:
        """Update the comment carrying `marker` in place, or create it. Returns GitHub's comment."""
        if marker not in body:
            raise ValueError("the body must carry the marker, or the next run cannot find it")
        existing = self.find_comment(number, marker)
        if existing:
            return self.request("PATCH", f"/repos/{self.repo}/issues/comments/{int(existing['id'])}",
                                json={"body": body}).json()
        return self.request("POST", f"/repos/{self.repo}/issues/{int(number)}/comments", json={"body": body}).json()


def _rate_limit_wait(response: httpx.Response, backoff: float) -> float | None:
    """Seconds to wait before retrying, or None when this is not a rate limit."""
    status = response.status_code
    if status not in (403, 429):
        return None
    headers = response.headers
    if headers.get("retry-after"):
        try:
            return max(float(headers["retry-after"]), 0.0)
        except ValueError:
            return backoff
    if headers.get("x-ratelimit-remaining") == "0" and headers.get("x-ratelimit-reset"):
        try:
            return max(float(headers["x-ratelimit-reset"]) - time.time(), 0.0) + 1.0
        except ValueError:
            return backoff
    if status == 429 or "rate limit" in _message(response).lower():
        return backoff
    return None  # a plain 403: permissions, not a limit


def _message(response: httpx.Response) -> str:
    try:
        data = response.json()
        msg = data.get("message", "") if isinstance(data, dict) else ""
    except ValueError:
        msg = response.text
    return " ".join(str(msg).split())[:300] or response.reason_phrase


def _next_link(link: str) -> str | None:
    for part in link.split(","):
        m = re.match(r'\s*<([^>]+)>\s*;.*\brel="?next"?', part)
        if m:
            return m.group(1)
    return None
