"""Finding formats and the check registry's config handling."""

import json

import pytest

from lab_hooks.checks.config import ConfigError, load_config
from lab_hooks.checks.findings import Finding, Metric, render
from lab_hooks.checks.registry import RULES, load_checks

F = Finding("knowledge/a b/qna.yaml", 3, 7, "LH112", "error", "50% done: a,b\nnext line")


def test_text_format():
    assert render([F], "text", [F.file]) == "knowledge/a b/qna.yaml:3:7: error LH112 50% done: a,b\nnext line"


def test_github_format_escapes_workflow_command_data_and_properties():
    odd = Finding("x,y:z.yaml", 1, 2, "LH201", "warning", "100% bad\r\nline")
    assert render([odd], "github", [odd.file]) == \
        "::warning file=x%2Cy%3Az.yaml,line=1,col=2,title=LH201::LH201 100%25 bad%0D%0Aline"


def test_json_format_groups_findings_and_metrics_per_file():
    clean = "compositional_skills/ok/qna.yaml"
    out = json.loads(render([F], "json", [F.file, clean], [Metric(clean, "diversity", 0.8)]))
    assert out["errors"] == 1 and out["warnings"] == 0
    by_file = {entry["file"]: entry for entry in out["files"]}
    assert by_file[F.file]["findings"] == [
        {"line": 3, "col": 7, "code": "LH112", "severity": "error", "message": F.message}]
    assert by_file[clean] == {"file": clean, "findings": [], "metrics": {"diversity": 0.8}}


def test_config_from_lab_hooks_yaml(tmp_path):
    load_checks()
    (tmp_path / ".lab-hooks.yaml").write_text("rules:\n  LH111: warning\n  wrong-type: off\n")
    config = load_config(tmp_path)
    assert config.severity(RULES["LH111"]) == "warning"
    assert config.severity(RULES["LH112"]) == "off"
    assert config.severity(RULES["LH110"]) == "error"


def test_config_from_pyproject(tmp_path):
    load_checks()
    (tmp_path / "pyproject.toml").write_text('[tool.lab-hooks.rules]\nLH101 = "warning"\n')
    assert load_config(tmp_path).severity(RULES["LH101"]) == "warning"


def test_a_profile_and_the_repository_rules_over_it(tmp_path):
    load_checks()
    (tmp_path / ".lab-hooks.yaml").write_text("profile: instructlab\nrules:\n  version-missing: error\n"
                                              "  LH201: error\n")
    config = load_config(tmp_path)
    assert config.profile == "instructlab"
    assert config.severity(RULES["LH101"]) == "error"  # moved back to strict, one rule
    assert config.severity(RULES["LH302"]) == "warning"  # still the profile's
    assert config.severity(RULES["LH403"]) == "error" and config.severity(RULES["LH403"], version_1=True) == "warning"
    assert config.severity(RULES["LH201"], version_1=True) == "error"  # a plain severity holds for every leaf
    assert load_config(tmp_path / "missing").profile == "strict"


@pytest.mark.parametrize("text, message", [
    ("rules:\n  LH999: warning\n", "unknown rule 'LH999'"),
    ("rules:\n  LH111: loud\n", "severity must be one of"),
    ("thresholds:\n  nope: 3\n", "unknown threshold 'nope'"),
    ("colour: red\n", "only 'document_hosts', 'profile', 'rules', 'thresholds'"),
    ("profile: lenient\n", "unknown profile 'lenient'; known: instructlab, strict"),
    ("rules:\n  LH201: {severity: error, version_1: warning}\n", "severity must be one of"),
    ("rules: [\n", "cannot read"),
    ("[" * 10_000, "cannot read: .*nesting"),
])
def test_bad_config_is_one_clear_error(tmp_path, text, message):
    load_checks()
    (tmp_path / ".lab-hooks.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path)


def test_readme_lists_every_rule_and_threshold():
    from pathlib import Path

    from lab_hooks.checks.registry import THRESHOLDS

    load_checks()
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for r in RULES.values():
        assert f"| {r.code} | {r.name} | {r.severity} | {r.summary} |" in readme, r.code
    for t in THRESHOLDS.values():
        assert f"| `{t.name}` | {t.default} | {t.summary} |" in readme, t.name


def test_json_report_is_json_dumps_of_the_per_file_report():
    """The hand-written JSON equals json.dumps of the report as dicts, odd text included."""
    findings = [F, F._replace(line=1, note="pre-existing", severity="warning"),
                Finding("a\u2028\"b\\.yaml", 2, 1, "LH201", "error", "tab\there \x00 \u00e9")]
    metrics = [Metric(F.file, "diversity", 0.25), Metric("only-metric.yaml", "diversity", 1)]
    files = [F.file, "clean.yaml"]
    expected = {"files": [], "errors": 2, "warnings": 1}
    for name in [F.file, "clean.yaml", "a\u2028\"b\\.yaml", "only-metric.yaml"]:
        expected["files"].append({"file": name, "findings": [
            {"line": f.line, "col": f.col, "code": f.code, "severity": f.severity, "message": f.message,
             **({"note": f.note} if f.note else {})} for f in sorted(findings) if f.file == name],
            "metrics": {m.name: m.value for m in metrics if m.file == name}})
    assert render(findings, "json", files, metrics) == json.dumps(expected, ensure_ascii=False)
