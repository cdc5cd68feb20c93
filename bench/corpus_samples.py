"""Training samples made from real contributors' seed examples (the shared corpus).

Stand-in for SDG output while the benches run without a teacher: every distinct
(question, answer, context) a leaf path ever held across its historical versions
becomes one InstructLab `messages` sample, shaped as our SDG writes them (system
prompt, user question with its context, assistant answer). Skills form only
(`unmask` false), so all of it is phase-2 data.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "instructlab-taxonomy-history"
SYSTEM_PROMPT = "You are a helpful, respectful and honest assistant."


def leaf_samples(corpus: Path = CORPUS) -> dict[str, list[dict]]:
    """{leaf name: samples} for every leaf path in the corpus, sorted by name."""
    from lab_hooks.taxonomy.load import LeafError, parse_leaf

    seen: dict[str, dict[tuple, None]] = {}
    with open(corpus / "index.tsv", encoding="utf-8") as index:
        for row in csv.DictReader(index, delimiter="\t"):
            try:
                leaf = parse_leaf((corpus / row["tree"] / row["path"]).read_bytes(), row["path"])
            except (LeafError, OSError, ValueError):
                continue
            for example in leaf.examples:
                if example.question.strip() and example.answer.strip():
                    key = (example.question.strip(), example.answer.strip(), (example.context or "").strip())
                    seen.setdefault(leaf.name or "root", {})[key] = None
    return {name: [_sample(name, *key) for key in examples] for name, examples in sorted(seen.items())}


def _sample(leaf: str, question: str, answer: str, context: str) -> dict:
    user = f"{context}\n\n{question}" if context else question
    digest = hashlib.sha256(f"{leaf}\0{user}\0{answer}".encode()).hexdigest()[:16]
    return {
        "id": f"{leaf}#{digest}",
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": user},
            {"role": "assistant", "content": answer},
        ],
        "metadata": {"dataset": leaf, "source": "corpus seed example"},
        "unmask": False,
    }


def bench_inputs(model: Path | None, data: Path | None) -> tuple[Path, dict[str, list[dict]]]:
    """The training benches' model (default: the embedded checkpoint) and per-leaf samples
    (a JSON file of {leaf: samples}, default: the corpus's seeds)."""
    if model is None:
        from lab_hooks.models.embedded import embedded_checkpoint

        model = embedded_checkpoint()
    return model, json.loads(data.read_text()) if data else leaf_samples()
