"""`assay review push --only duplicates`: the pairs semantic dedupe was not sure of (the version's
`possible_duplicates` table) as a "same note?" question, so a person decides instead of a threshold."""

from __future__ import annotations

import hashlib
import warnings

from assay.errors import AssayError
from assay.store import Version

CHOICES = {"keep_both": "Different notes: keep both", "keep_a": "Same note: keep A", "keep_b": "Same note: keep B"}


def pair_id(a: str, b: str) -> str:
    return "dup-" + hashlib.sha256(f"{a}\x00{b}".encode()).hexdigest()[:20]


def push_duplicates(version: Version, client, workspace: str, min_submitted: int) -> dict:
    import argilla as rg

    from curation.review.push import ensure_dataset

    pairs = version.table("possible_duplicates")
    if pairs is None:
        raise AssayError(f"{version.ref} has no possible_duplicates table (curate writes one when semantic "
                         "dedupe finds pairs it is not sure of)")
    name = f"{version.manifest['name']}-{version.manifest['version']}-duplicates"
    settings = rg.Settings(
        guidelines="Two notes that may be the same. Keep both when they say different things.",
        fields=[rg.TextField(name="note_a", title="Note A"), rg.TextField(name="note_b", title="Note B")],
        questions=[rg.LabelQuestion(name="same_note", title="Same note?", labels=CHOICES),
                   rg.TextQuestion(name="comment", title="Comment (optional)", required=False)],
        metadata=[rg.FloatMetadataProperty(name="cosine"), rg.FloatMetadataProperty(name="word_overlap")],
        distribution=rg.TaskDistribution(min_submitted=min_submitted))
    dataset = ensure_dataset(client, name, workspace, settings)
    stored = {r.id for r in dataset.records(batch_size=1000, with_suggestions=False, with_responses=False)}
    records = [rg.Record(id=pair_id(row["note_id_a"], row["note_id_b"]),
                         fields={"note_a": row["text_a"] or "(empty)", "note_b": row["text_b"] or "(empty)"},
                         metadata={"cosine": float(row["cosine"]), "word_overlap": float(row["word_overlap"])})
               for row in pairs.iter_rows(named=True) if pair_id(row["note_id_a"], row["note_id_b"]) not in stored]
    if records:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset.records.log(records, batch_size=500)
    return {"dataset": name, "added": len(records), "already": pairs.height - len(records), "total": pairs.height,
            "url": f"{str(client.api_url).rstrip('/')}/dataset/{dataset.id}/annotation-mode"}
