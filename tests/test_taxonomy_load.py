"""The leaf loader: line marks, tolerance, and hostile YAML."""

import pytest

from lab_hooks.taxonomy.leaf import Kind, git_blob_sha, taxonomy_path
from lab_hooks.taxonomy.load import LeafError, parse_leaf
from lab_hooks.taxonomy.yamlmarks import MAX_DEPTH, YamlError, load

SKILL = b"""\
version: 3
created_by: someone
task_description: Write limericks.
seed_examples:
  - question: Write a limerick about a cat.
    answer: |
      There once was a cat from Peru
  - question: Write a limerick about rain.
    answer: Rain rain
"""


def test_marks_point_at_values_and_keys():
    doc = load(SKILL.decode())
    assert doc.marks[("seed_examples", 1, "question")] == (8, 15)
    assert doc.key_marks[("seed_examples", 1, "question")] == (8, 5)
    assert doc.pos(("seed_examples", 1, "question", "missing")) == (8, 15)


def test_leaf_from_skill_file():
    leaf = parse_leaf(SKILL, "compositional_skills/writing/freeform/limericks/qna.yaml")
    assert leaf.kind is Kind.COMPOSITIONAL and not leaf.grounded
    assert leaf.name == "compositional_skills/writing/freeform/limericks"
    assert [e.question for e in leaf.examples] == ["Write a limerick about a cat.", "Write a limerick about rain."]
    assert leaf.examples[0].answer == "There once was a cat from Peru\n"
    assert leaf.examples[1].pos == (8, 15)
    assert leaf.blob_sha == git_blob_sha(SKILL)


def test_git_blob_sha_matches_git():
    assert git_blob_sha(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"


@pytest.mark.parametrize("path, expected", [
    ("compositional_skills/a/knowledge/b/qna.yaml", ("compositional_skills/a/knowledge/b/qna.yaml", Kind.COMPOSITIONAL)),
    ("/home/knowledge/repo/compositional_skills/x/qna.yaml", ("compositional_skills/x/qna.yaml", Kind.COMPOSITIONAL)),
    ("trees/abc/knowledge/science/qna.yaml", ("knowledge/science/qna.yaml", Kind.KNOWLEDGE)),
    ("other/qna.yaml", ("other/qna.yaml", None)),
])
def test_taxonomy_path(path, expected):
    assert taxonomy_path(path) == expected


def test_duplicate_keys_are_recorded_last_wins():
    doc = load("a: 1\nb: 2\na: 3\n")
    assert doc.data == {"a": 3, "b": 2}
    assert doc.duplicate_keys == [(("a",), (1, 1), (3, 1))]


def test_alias_bomb_is_a_diagnostic():
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i-1}"] * 10) + "]" for i in range(1, 9)]
    with pytest.raises(YamlError, match="alias bomb"):
        load("\n".join(lines))


def test_deep_nesting_is_a_diagnostic():
    with pytest.raises(YamlError, match="nesting"):
        load("[" * 10_000 + "]" * 10_000)
    block = "".join("  " * i + "- \n" for i in range(MAX_DEPTH + 5))
    with pytest.raises(YamlError, match="nesting deeper") as exc:
        load(block)
    assert exc.value.pos == (MAX_DEPTH + 1, 2 * MAX_DEPTH + 1)


@pytest.mark.parametrize("content, code, pos", [
    (b"", "LH004", (1, 1)),
    (b"a: [\n", "LH003", (2, 1)),
    (b"- 1\n- 2\n", "LH005", (1, 1)),
    (b"a: 1\nb: \xff\n", "LH002", (2, 4)),
    (b"a: 1\x00", "LH002", (1, 1)),
    (b"a: !!python/object:os.system x\n", "LH003", (1, 4)),
])
def test_unusable_input(content, code, pos):
    with pytest.raises(LeafError) as exc:
        parse_leaf(content, "compositional_skills/x/qna.yaml")
    assert (exc.value.code, exc.value.pos) == (code, pos)


def test_tab_that_only_libyaml_rejects_is_parsed_like_pyyaml():
    # InstructLab parses with PyYAML's pure-Python parser, which accepts this block scalar
    assert load("f: |\n  \tx\n  y\n").data == {"f": "\tx\ny\n"}
