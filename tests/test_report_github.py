"""The GitHub REST client against a local server on 127.0.0.1 speaking GitHub's API."""

from __future__ import annotations

import json
import time

import pytest
from github_server import FakeGitHub

from lab_hooks.report.comment import MARKER
from lab_hooks.report.github import GitHub, GitHubError


@pytest.fixture
def server():
    with FakeGitHub() as srv:
        yield srv


def client(server, token="test-token", **kw):
    waits = []
    gh = GitHub(token, server.repo, server.url, sleep=waits.append, **kw)
    return gh, waits


def test_sticky_comment_found_across_pages_and_updated_in_place(server):
    for i in range(250):
        server.add_comment(7, f"comment {i} mentioning lab-hooks")
    ours = server.add_comment(7, f"{MARKER}\nold report", user="github-actions[bot]")
    server.add_comment(7, "a later reply")
    gh, _ = client(server)
    result = gh.upsert_comment(7, f"{MARKER}\nnew report", MARKER)
    assert result["id"] == ours["id"] and result["html_url"].endswith(f"#issuecomment-{ours['id']}")
    assert [c["body"] for c in server.comments[7]].count(f"{MARKER}\nnew report") == 1
    assert len(server.comments[7]) == 252
    pages = [p for m, p in server.requests if m == "GET" and "/comments" in p]
    assert len(pages) == 3 and "page=3" in pages[-1]


@pytest.mark.parametrize("user", [None, "maintainer"])  # the workflow's GITHUB_TOKEN; a maintainer's PAT
def test_a_planted_marker_comment_is_never_taken_over(server, user):
    """The PR's author pastes the marker first (and a comment under the bot's name that is no bot):
    the bot writes its own comment, and only ever updates that one."""
    server.user = user
    bot = user or "github-actions[bot]"
    planted = server.add_comment(7, f"{MARKER}\nplanted by the PR author", user="mallory")
    impostor = server.add_comment(7, f"{MARKER}\nnot a bot", user="mallory")
    impostor["user"] = {"login": bot, "type": "Bot" if user else "User"}  # a login that is not of its type
    gh, _ = client(server)
    first = gh.upsert_comment(7, f"{MARKER}\nreport 1", MARKER)
    second = gh.upsert_comment(7, f"{MARKER}\nreport 2", MARKER)
    assert first["id"] == second["id"] not in (planted["id"], impostor["id"])
    assert first["user"]["login"] == bot
    assert [c["body"] for c in server.comments[7]] == [f"{MARKER}\nplanted by the PR author", f"{MARKER}\nnot a bot",
                                                        f"{MARKER}\nreport 2"]
    assert not any(m == "PATCH" and p.endswith(f"/{planted['id']}") for m, p in server.requests)


def test_identity_errors_other_than_forbidden_are_reported(server):
    server.add_comment(7, f"{MARKER}\nx", user="github-actions[bot]")
    gh, _ = client(server, token="wrong")
    with pytest.raises(GitHubError, match="HTTP 401"):
        gh.upsert_comment(7, f"{MARKER}\ny", MARKER)


def test_first_run_creates_then_updates(server):
    gh, _ = client(server)
    first = gh.upsert_comment(9, f"{MARKER}\none", MARKER)
    second = gh.upsert_comment(9, f"{MARKER}\ntwo", MARKER)
    assert first["id"] == second["id"] and [c["body"] for c in server.comments[9]] == [f"{MARKER}\ntwo"]
    with pytest.raises(ValueError):
        gh.upsert_comment(9, "no marker", MARKER)


@pytest.mark.parametrize("status,headers,message,expected", [
    (403, {"retry-after": "3"}, "You have exceeded a secondary rate limit.", 3.0),
    (429, {"retry-after": "1"}, "Too many requests", 1.0),
    (429, {}, "Too many requests", 60.0),
    (403, {}, "You have exceeded a secondary rate limit. Please wait a few minutes", 60.0),
])
def test_rate_limits_are_waited_out(server, status, headers, message, expected):
    server.inject = [(status, headers, {"message": message})]
    gh, waits = client(server)
    gh.upsert_comment(3, f"{MARKER}\nx", MARKER)
    assert waits == [expected] and len(server.comments[3]) == 1


def test_primary_limit_waits_until_reset(server):
    reset = int(time.time()) + 30
    server.inject = [(403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
                      {"message": "API rate limit exceeded"})] * 2
    gh, waits = client(server)
    gh.upsert_comment(3, f"{MARKER}\nx", MARKER)
    assert len(waits) == 2 and all(25 <= w <= 32 for w in waits)


def test_backoff_doubles_and_gives_up_with_one_line(server):
    server.inject = [(429, {}, {"message": "slow down"})] * 10
    gh, waits = client(server, max_wait=400)
    with pytest.raises(GitHubError) as e:
        gh.upsert_comment(3, f"{MARKER}\nx", MARKER)
    assert waits == [60.0, 120.0]  # the next (240 s) would pass the 400 s budget
    assert "rate limited" in str(e.value) and "\n" not in str(e.value)


def test_permission_403_and_bad_token_fail_at_once(server):
    server.inject = [(403, {}, {"message": "Resource not accessible by integration"})]
    gh, waits = client(server)
    with pytest.raises(GitHubError, match="HTTP 403: Resource not accessible by integration"):
        gh.upsert_comment(3, f"{MARKER}\nx", MARKER)
    assert waits == []
    bad, _ = client(server, token="wrong")
    with pytest.raises(GitHubError, match="HTTP 401: Bad credentials"):
        bad.upsert_comment(3, f"{MARKER}\nx", MARKER)


def test_unreachable_server_is_one_line():
    gh = GitHub("t", "acme/taxonomy", "http://127.0.0.1:9", timeout=2)
    with pytest.raises(GitHubError, match="ConnectError"):
        list(gh.issue_comments(1))
    with pytest.raises(GitHubError, match="OWNER/NAME"):
        GitHub("t", "not a repo")


def test_pagination_never_follows_a_link_off_the_api_host(server):
    gh, _ = client(server)
    server.inject = [(200, {"link": '<http://example.invalid/steal?page=2>; rel="next"'}, [])]
    with pytest.raises(GitHubError, match="off the API host"):
        list(gh.issue_comments(1))


def test_comment_command_posts_and_updates(server, tmp_path, monkeypatch, capsys):
    from lab_hooks.report.publish import main as comment_main

    results = tmp_path / "results.json"
    results.write_text(json.dumps({"status": "failed", "failure": {"stage": "train", "reason": "out of memory"}}))
    monkeypatch.setenv("GITHUB_TOKEN", server.token)
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "output"))
    argv = ["--results", str(results), "--pr", "5", "--github-repo", server.repo, "--api-url", server.url]
    assert comment_main(argv) == 0
    argv[argv.index("--github-repo")] = "--repo"  # the old spelling: a hidden alias for one release
    results.write_text("{not json")  # lab-pr died mid-write: the PR still hears about it, the job log too
    capsys.readouterr()
    assert comment_main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{results}: no usable results file (JSONDecodeError: " in err, err
    [comment] = server.comments[5]
    assert comment["body"].startswith(MARKER) and "no usable results file" in comment["body"]
    assert "comment-url<<" in (tmp_path / "output").read_text()
    monkeypatch.delenv("GITHUB_TOKEN")
    assert comment_main(argv) == 2


def test_comment_command_on_badly_typed_results_says_so_in_one_line(server, tmp_path, monkeypatch, capsys):
    from lab_hooks.report.publish import main as comment_main

    results = tmp_path / "results.json"
    results.write_text(json.dumps({"status": "ok", "mtbench": {"overall": {"delta": "<img src=x> @org/team"}},
                                   "generation": {"leaves": [{"leaf": "x", "accepted": "12"}]}}))
    monkeypatch.setenv("GITHUB_TOKEN", server.token)
    argv = ["--results", str(results), "--pr", "5", "--github-repo", server.repo, "--api-url", server.url]
    assert comment_main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "malformed results at " in err and "Traceback" not in err, err
    [comment] = server.comments[5]  # the PR hears that its run's report cannot be shown
    assert "malformed" in comment["body"] and "<img" not in comment["body"] and "@org/team" not in comment["body"]


def test_comment_links_come_from_the_job_not_the_results(server, tmp_path, monkeypatch):
    """server_url, repo and artifacts_url in results.json are not where the comment links."""
    from lab_hooks.report.publish import main as comment_main

    results = tmp_path / "results.json"
    results.write_text(json.dumps({
        "status": "failed", "repo": "evil/repo", "server_url": "https://evil.example",
        "artifacts_url": "https://evil.example/evil/repo/actions/runs/1", "head": {"sha": "b" * 40},
        "failure": {"stage": "validate", "reason": "r", "findings": [
            {"file": "knowledge/x/qna.yaml", "line": 2, "col": 1, "severity": "error", "code": "LH1", "message": "m"}]}}))
    monkeypatch.setenv("GITHUB_TOKEN", server.token)
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    argv = ["--results", str(results), "--pr", "5", "--github-repo", server.repo, "--api-url", server.url,
            "--artifacts-url", "https://github.com/acme/taxonomy/actions/runs/77"]
    assert comment_main(argv) == 0
    body = server.comments[5][0]["body"]
    assert "evil" not in body
    assert f"(https://github.com/acme/taxonomy/blob/{'b' * 40}/knowledge/x/qna.yaml#L2)" in body
    assert "(https://github.com/acme/taxonomy/actions/runs/77)" in body


@pytest.mark.parametrize("case, pulls, results_head, results_pr, code, posted", [
    ("the PR is at the verified head", {5: "a"}, "a", 5, 0, True),
    ("a failure report without a head", {5: "a"}, None, None, 0, True),
    ("the number names another PR (forged)", {5: "c"}, "a", 5, 0, False),
    ("the PR moved on since", {5: "b"}, "a", 5, 0, False),
    ("no such PR (an issue number)", {}, "a", 5, 1, False),
    ("the results are for another head", {5: "a"}, "b", 5, 1, False),
    ("the results are for another PR", {5: "a"}, "a", 6, 1, False),
])
def test_comment_posts_only_on_the_pr_at_the_verified_head(server, tmp_path, monkeypatch, capsys, case, pulls,
                                                           results_head, results_pr, code, posted):
    from lab_hooks.report.publish import main as comment_main

    server.pulls = {n: {"head": {"sha": c * 40}, "state": "open"} for n, c in pulls.items()}
    run = {"status": "ok", "pr": results_pr}
    if results_head:
        run["head"] = {"ref": "x", "sha": results_head * 40}
    results = tmp_path / "results.json"
    results.write_text(json.dumps(run))
    monkeypatch.setenv("GITHUB_TOKEN", server.token)
    argv = ["--results", str(results), "--pr", "5", "--github-repo", server.repo, "--api-url", server.url,
            "--expect-head", "a" * 40]
    assert comment_main(argv) == code, case
    assert bool(server.comments.get(5)) == posted, case
    err = capsys.readouterr().err
    assert posted or (err.count("\n") == 1 and "not posted" in err or "HTTP 404" in err), (case, err)
