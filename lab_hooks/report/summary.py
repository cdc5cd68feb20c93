"""The other two places a run shows up on GitHub: the job summary and annotations.

`write_step_summary` appends the rendered comment to `$GITHUB_STEP_SUMMARY`
(a file the runner turns into the job's summary page; 1 MiB limit per step).
`annotations` turns validation findings (plain dicts, as in results.json) into
the validator's own `::error file=…,line=…::` lines (`Finding.github`, escaped
so a message cannot end the command and start another).
"""

from __future__ import annotations

import os
from typing import Iterable

from lab_hooks.checks.findings import Finding

STEP_SUMMARY_LIMIT = 1024 * 1024


def write_step_summary(markdown: str, path: str | os.PathLike | None = None) -> bool:
    """Append to the job summary when running under Actions; False when there is none."""
    target = path or os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return False
    data = markdown.encode("utf-8")
    if len(data) > STEP_SUMMARY_LIMIT:
        data = data[: STEP_SUMMARY_LIMIT - 200].decode("utf-8", "ignore").encode("utf-8")
        data += b"\n\n**Truncated: the full report is in the run's artifacts.**\n"
    with open(target, "ab") as f:
        f.write(data)
    return True


def annotations(findings: Iterable[dict]) -> list[str]:
    fields = ("file", "line", "col", "code", "severity", "message")
    return [Finding(**{k: f.get(k, 1 if k in ("line", "col") else "") for k in fields}).github() for f in findings]


def set_outputs(values: dict[str, str], path: str | os.PathLike | None = None) -> bool:
    """Write step outputs to `$GITHUB_OUTPUT` with a random heredoc delimiter (no injection)."""
    target = path or os.environ.get("GITHUB_OUTPUT")
    if not target:
        return False
    with open(target, "a", encoding="utf-8") as f:
        for key, value in values.items():
            delimiter = f"lab_hooks_{os.urandom(8).hex()}"
            f.write(f"{key}<<{delimiter}\n{value}\n{delimiter}\n")
    return True


def findings_as_dicts(findings) -> list[dict]:
    """Findings from the validator (objects or dicts) as plain dicts for the report."""
    out = []
    for f in findings:
        if isinstance(f, dict):
            out.append(dict(f))
            continue
        d = {k: getattr(f, k) for k in ("file", "line", "col", "severity", "code", "message") if hasattr(f, k)}
        sev = d.get("severity")
        d["severity"] = getattr(sev, "value", sev)
        out.append(d)
    return out

