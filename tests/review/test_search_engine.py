"""Our SQLite search engine, through the HTTP routes the Argilla UI calls: text query, metadata and suggestion
filters, response status per user, sort, pagination, progress and metadata metrics."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
from conftest import annotator, make_version, server_records, submit

from assay.curation.review.push import record_id

N = 40


@pytest.fixture(scope="module")
def searched(server):
    make_version(server.home, "search", N)
    subprocess.run([sys.executable, "-m", "assay", "review", "push", "search"], env=server.env(), check=True,
                   capture_output=True, timeout=300)
    records = server_records(server, "search-v1-summarize")
    ann, bob = annotator(server, "ann"), annotator(server, "bob")
    submit(server, ann, records[record_id("summarize", "search-note-00003")], {"output": "x", "quality": 4})
    submit(server, ann, records[record_id("summarize", "search-note-00004")], {}, status="discarded")
    submit(server, bob, records[record_id("summarize", "search-note-00004")], {"output": "y", "quality": 2})
    dataset_id = next(iter(records.values()))["dataset_id"]
    ids = {r["id"]: ext for ext, r in records.items()}
    return dataset_id, ids, ann, bob


def search(server, key, dataset_id, body, **params):
    resp = httpx.post(f"{server.url}/api/v1/me/datasets/{dataset_id}/records/search", json=body,
                      params={"limit": 50, **params}, headers={"X-Argilla-Api-Key": key}, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()


def note(ids, item) -> int:
    """The note number of a search hit (records are `search-note-<n>`)."""
    return int(next(n for n in range(N) if record_id("summarize", f"search-note-{n:05d}") == ids[item["record"]["id"]]))


def terms(scope, values):
    return {"filters": {"and": [{"type": "terms", "scope": scope, "values": values}]}}


def test_text_query_and_field(server, searched):
    dataset_id, ids, _, _ = searched
    key = server.creds["api_key"]
    hits = search(server, key, dataset_id, {"query": {"text": {"q": "compost number 17"}}})
    assert [note(ids, h) for h in hits["items"]] == [17] and hits["total"] == 1
    prefix = search(server, key, dataset_id, {"query": {"text": {"q": "tomat*", "field": "note"}}})
    assert prefix["total"] == N
    assert search(server, key, dataset_id, {"query": {"text": {"q": "tomatoes", "field": "instruction"}}})["total"] == 0


def test_metadata_and_suggestion_filters(server, searched):
    dataset_id, ids, _, _ = searched
    key = server.creds["api_key"]
    home = search(server, key, dataset_id, terms({"entity": "metadata", "metadata_property": "category"}, ["home"]))
    assert sorted(note(ids, h) for h in home["items"]) == list(range(0, N, 2))
    low = search(server, key, dataset_id, {"filters": {"and": [
        {"type": "range", "scope": {"entity": "metadata", "metadata_property": "agreement"}, "le": 0.2}]}})
    expected = [i for i in range(N) if (i * 37 % 100) / 100 <= 0.2]
    assert sorted(note(ids, h) for h in low["items"]) == expected
    by_agent = search(server, key, dataset_id,
                      terms({"entity": "suggestion", "question": "output", "property": "agent"}, ["rule:lead"]))
    assert by_agent["total"] == N


def test_sort_and_pagination(server, searched):
    dataset_id, ids, _, _ = searched
    key = server.creds["api_key"]
    order = {"sort": [{"scope": {"entity": "metadata", "metadata_property": "agreement"}, "order": "desc"}]}
    pages = [search(server, key, dataset_id, order, offset=o, limit=15) for o in (0, 15, 30)]
    seen = [note(ids, h) for p in pages for h in p["items"]]
    assert len(seen) == N == len(set(seen)) and all(p["total"] == N for p in pages)
    agreements = [(n * 37 % 100) / 100 for n in seen]
    assert agreements == sorted(agreements, reverse=True)
    # unsorted, records come as pushed: least agreement first
    plain = [note(ids, h) for h in search(server, key, dataset_id, {})["items"]]
    assert [(n * 37 % 100) / 100 for n in plain] == sorted((n * 37 % 100) / 100 for n in range(N))


def test_response_status_per_user_and_progress(server, searched):
    dataset_id, ids, ann, bob = searched
    status = {"entity": "response", "property": "status"}
    ann_pending = search(server, ann["api_key"], dataset_id, terms(status, ["pending"]))
    assert ann_pending["total"] == N - 2
    ann_submitted = search(server, ann["api_key"], dataset_id, terms(status, ["submitted"]))
    assert [note(ids, h) for h in ann_submitted["items"]] == [3]
    bob_submitted = search(server, bob["api_key"], dataset_id, terms(status, ["submitted"]))
    assert [note(ids, h) for h in bob_submitted["items"]] == [4]
    # a filter on answers is scoped to the searching user, as the UI's "my answers" filters are
    rated = {"filters": {"and": [{"type": "range", "scope": {"entity": "response", "question": "quality"}, "ge": 3}]}}
    assert [note(ids, h) for h in search(server, ann["api_key"], dataset_id, rated)["items"]] == [3]
    assert search(server, bob["api_key"], dataset_id, rated)["total"] == 0

    owner = {"X-Argilla-Api-Key": server.creds["api_key"]}
    progress = httpx.get(f"{server.url}/api/v1/datasets/{dataset_id}/progress", headers=owner).json()
    assert progress["total"] == N and progress["completed"] == 2 and progress["pending"] == N - 2
    mine = httpx.get(f"{server.url}/api/v1/me/datasets/{dataset_id}/metrics",
                     headers={"X-Argilla-Api-Key": ann["api_key"]}).json()
    assert mine["responses"]["submitted"] == 1 and mine["responses"]["discarded"] == 1


def test_metadata_metrics(server, searched):
    dataset_id, _, _, _ = searched
    owner = {"X-Argilla-Api-Key": server.creds["api_key"]}
    props = httpx.get(f"{server.url}/api/v1/me/datasets/{dataset_id}/metadata-properties",
                      headers=owner).json()["items"]
    by_name = {p["name"]: p["id"] for p in props}
    category = httpx.get(f"{server.url}/api/v1/metadata-properties/{by_name['category']}/metrics", headers=owner).json()
    assert (category["total"] == N
            and {v["term"]: v["count"] for v in category["values"]} == {"home": N // 2, "work": N // 2})
    agreement = httpx.get(f"{server.url}/api/v1/metadata-properties/{by_name['agreement']}/metrics",
                          headers=owner).json()
    values = [(i * 37 % 100) / 100 for i in range(N)]
    assert agreement["min"] == min(values) and agreement["max"] == max(values)
