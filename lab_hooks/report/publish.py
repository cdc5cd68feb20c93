"""`lab-hooks comment`: post a run's results to its PR as the one sticky comment.

The commenting job runs this with a `pull-requests: write` token and nothing
else: it reads the results JSON that `lab-hooks pr` wrote, renders it again
(every untrusted string escaped here, whatever the JSON holds), and creates or
updates the comment that carries the marker. With `--expect-head SHA` (the
commenting workflow passes the head that lab-pr verified), GitHub's API must say
PR `--pr` is at that sha, and so must the results, before anything is posted:
a report is never posted on a PR it was not made for. Where the comment links to (the
server, the repository, the run's artifacts) comes from this job's own
environment and flags, never from the JSON. A results file whose fields do not
have the types the comment renders is reported as malformed on the PR, one that
is missing or not JSON as the lab-pr job's failure; either way the command exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

from lab_hooks.flags import Parser, alias, command
from lab_hooks.report import results
from lab_hooks.report.comment import MARKER, malformed, render_comment
from lab_hooks.report.escape import log_safe, one_line
from lab_hooks.report.github import API_URL, GitHub, GitHubError
from lab_hooks.report.summary import set_outputs, write_step_summary

MAX_RESULTS_BYTES = 50 * 1024 * 1024


class NotPosted(Exception):
    """The report is not for this PR's head; `code` is the exit status (0: the PR moved on)."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def post(run: dict, pr: int, repo: str, token: str, api_url: str = API_URL, expect_head: str | None = None,
         **client_args) -> str:
    """Render `run` and upsert the sticky comment; returns the comment's URL."""
    with GitHub(token, repo, api_url, **client_args) as gh:
        if expect_head:
            check_head(gh, pr, expect_head, run)
        return gh.upsert_comment(pr, render_comment(run), MARKER).get("html_url", "")


def check_head(gh: GitHub, pr: int, head: str, run: dict) -> None:
    """Raise NotPosted unless the results and GitHub both say PR `pr` is at `head`."""
    said = (run.get("head") or {}).get("sha")
    if said and said != head:
        raise NotPosted(f"the results are for head {said[:12]}, not the verified {head[:12]}: not posted", 1)
    if run.get("pr") not in (None, pr):
        raise NotPosted(f"the results are for PR #{run['pr']}, not #{pr}: not posted", 1)
    now = str((gh.pull(pr).get("head") or {}).get("sha"))
    if now != head:
        raise NotPosted(f"PR #{pr} is now at {now[:12]}, this report is for {head[:12]}: not posted "
                        "(the run for the new head reports)", 0)


def sha(text: str) -> str:
    """An argparse type: a full hex commit sha."""
    if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", text):
        raise argparse.ArgumentTypeError(f"{text[:80]!r} is not a full commit sha")
    return text


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="lab-hooks comment", description=__doc__.splitlines()[0])
    p.add_argument("--results", required=True, help="results JSON written by `lab-hooks pr`")
    p.add_argument("--pr", required=True, type=int, help="pull request number")
    p.add_argument("--expect-head", type=sha, help="post only if the PR's head (GitHub's API) and the results' are this sha")
    p.add_argument("--github-repo", dest="repo", default=os.environ.get("GITHUB_REPOSITORY"), metavar="OWNER/NAME",
                   help="the repository on GitHub (default $GITHUB_REPOSITORY); `--repo` is a git folder elsewhere")
    alias(p, "--repo", "repo")
    p.add_argument("--api-url", default=os.environ.get("GITHUB_API_URL", API_URL))
    p.add_argument("--server-url", default=os.environ.get("GITHUB_SERVER_URL", "https://github.com"),
                   help="the GitHub server the comment links to ($GITHUB_SERVER_URL)")
    p.add_argument("--artifacts-url", help="the web page of the run whose artifacts hold the full results")
    p.add_argument("--token-env", default="GITHUB_TOKEN", help="environment variable holding the token")
    p.add_argument("--bot-login", help="the login the token comments as, for a GitHub App's token: `<slug>[bot]` "
                                       "(default: the token's user, or github-actions[bot])")
    return p


@command("lab-hooks comment")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    token = os.environ.get(args.token_env, "")
    if not token:
        print(f"lab-hooks comment: ${args.token_env} is empty: pass the workflow's token", file=sys.stderr)
        return 2
    if not args.repo:
        print("lab-hooks comment: --github-repo OWNER/NAME is required outside GitHub Actions", file=sys.stderr)
        return 2
    try:
        if os.path.getsize(args.results) > MAX_RESULTS_BYTES:
            raise ValueError(f"over {MAX_RESULTS_BYTES:,} bytes")
        with open(args.results, encoding="utf-8") as f:
            run = json.load(f)
        if not isinstance(run, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        # lab-pr died before writing results: still say so on the PR, and exit 1
        unusable = f"no usable results file ({type(e).__name__}: {e})"
        run = {"status": "failed", "failure": {"stage": "lab-pr job", "reason": unusable}}
        print(f"lab-hooks comment: {log_safe(one_line(args.results))}: {log_safe(one_line(unusable))}", file=sys.stderr)
    else:
        unusable = None
    problem = results.problem(run)
    if problem:
        print(f"lab-hooks comment: {log_safe(one_line(args.results))}: malformed results {log_safe(problem)}",
              file=sys.stderr)
        run = malformed(problem)
    run.update(repo=args.repo, server_url=args.server_url, artifacts_url=args.artifacts_url)
    try:
        url = post(run, args.pr, args.repo, token, args.api_url, args.expect_head, login=args.bot_login)
    except (GitHubError, NotPosted) as e:
        print(f"lab-hooks comment: {log_safe(e)}", file=sys.stderr)
        return getattr(e, "code", 1)
    print(f"lab-hooks comment: {url}")
    set_outputs({"comment-url": url})
    write_step_summary(render_comment(run))
    return 1 if problem or unusable else 0
