"""The GitHub REST client against a local server on 127.0.0.1 speaking GitHub's API."""

from __future__ import annotations

import json
import time

import pytest
from github_server import FakeGitHub

from lab_hooks.report.comment import MARKER
from lab_hooks.report.github import GitHub, GitHubError, check_annotation


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
    pages = [p for m, p in server.requests if m == "GET"]
    assert len(pages) == 3 and "page=3" in pages[-1]


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


def test_check_run_annotations_in_batches_of_50(server):
    gh, _ = client(server)
    findings = [{"file": f"k/{i}/qna.yaml", "line": i + 1, "severity": "error", "code": "LH1", "message": "m"}
                for i in range(120)]
    run = gh.create_check_run("lab-hooks validate", "b" * 40, conclusion="failure", title="120 findings",
                              summary="see annotations", annotations=[check_annotation(f) for f in findings])
    stored = server.check_runs[run["id"]]
    assert len(stored["annotations"]) == 120 and stored["conclusion"] == "failure"
    assert stored["annotations"][119] == {"path": "k/119/qna.yaml", "start_line": 120, "end_line": 120,
                                          "annotation_level": "failure", "title": "LH1", "message": "m"}
    assert [m for m, p in server.requests] == ["POST", "PATCH", "PATCH"]


def test_comment_command_posts_and_updates(server, tmp_path, monkeypatch):
    from lab_hooks.report.publish import main as comment_main

    results = tmp_path / "results.json"
    results.write_text(json.dumps({"status": "failed", "failure": {"stage": "train", "reason": "out of memory"}}))
    monkeypatch.setenv("GITHUB_TOKEN", server.token)
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "output"))
    argv = ["--results", str(results), "--pr", "5", "--repo", server.repo, "--api-url", server.url]
    assert comment_main(argv) == 0
    results.write_text("{not json")  # lab-pr died mid-write: the PR still hears about it
    assert comment_main(argv) == 0
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
    argv = ["--results", str(results), "--pr", "5", "--repo", server.repo, "--api-url", server.url]
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
    argv = ["--results", str(results), "--pr", "5", "--repo", server.repo, "--api-url", server.url,
            "--artifacts-url", "https://github.com/acme/taxonomy/actions/runs/77"]
    assert comment_main(argv) == 0
    body = server.comments[5][0]["body"]
    assert "evil" not in body
    assert f"(https://github.com/acme/taxonomy/blob/{'b' * 40}/knowledge/x/qna.yaml#L2)" in body
    assert "(https://github.com/acme/taxonomy/actions/runs/77)" in body
