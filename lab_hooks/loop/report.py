"""The report stage: results.json and comment.md, the job summary and the step outputs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from lab_hooks.loop.run import say
from lab_hooks.report.comment import render_comment
from lab_hooks.report.summary import annotations, set_outputs, write_step_summary


def write_report(run: dict, out_dir: Path, progress: bool = True) -> str:
    """results.json + comment.md in `out_dir`, the job summary and step outputs; the comment."""
    start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    if not run.get("artifacts_url"):  # a local run: the reader has the files right here
        run["results_dir"] = str(out_dir)
    run["stages"].append({"name": "report", "status": "ok", "seconds": round(time.perf_counter() - start, 3)})
    comment = render_comment(run)
    (out_dir / "results.json").write_text(json.dumps(run, indent=2, default=str) + "\n", encoding="utf-8")
    (out_dir / "comment.md").write_text(comment, encoding="utf-8")
    write_step_summary(comment)
    overall = (run.get("mtbench") or {}).get("overall") or {}
    set_outputs({"overall-delta": "" if overall.get("delta") is None else str(overall["delta"]),
                 "verdict": "failed" if run["status"] != "ok" else str(overall.get("verdict") or "")})
    if os.environ.get("GITHUB_ACTIONS"):
        for line in annotations((run.get("failure") or {}).get("findings") or []):
            print(line)
    say(f"wrote {out_dir / 'results.json'} and {out_dir / 'comment.md'}", progress)
    return comment
