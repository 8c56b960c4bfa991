"""argilla-server's search engine on SQLite (FTS5 for text), so the embedded Argilla needs no Elasticsearch.

Runs inside argilla-server's own virtualenv (imported by launcher.py), never in ours. The server and
its rq worker open the same file ($ASSAY_ARGILLA_SEARCH_DB), in WAL mode, so both see every write.
Semantics follow argilla_server/search_engine/commons.py (the Elasticsearch/OpenSearch engines):
a record document holds fields, metadata, suggestions per question, responses per user, vectors and
status; filters, sorts, progress and metrics are the same queries in SQL over that document.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import sqlite3
from typing import Any, Iterable, List, Optional, Union
from uuid import UUID

from argilla_server.enums import MetadataPropertyType, ResponseStatusFilter, SimilarityOrder, SortOrder
from argilla_server.models import Dataset, MetadataProperty, Record, Response, Suggestion, User, VectorSettings
from argilla_server.search_engine.base import (
    AndFilter,
    Filter,
    FloatMetadataMetrics,
    IntegerMetadataMetrics,
    MetadataFilterScope,
    MetadataMetrics,
    Order,
    RangeFilter,
    RecordFilterScope,
    ResponseFilterScope,
    SearchEngine,
    SearchResponseItem,
    SearchResponses,
    SuggestionFilterScope,
    TermsFilter,
    TermsMetrics,
    TextQuery,
)

ENGINE_NAME = "assay-sqlite"
FIELDS_PER_RECORD = 64  # FTS rowid = record rowid * 64 + field position, so a record's text rows delete by range
_SCHEMA = """
CREATE TABLE IF NOT EXISTS indexes (dataset_id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS docs (
    rid INTEGER PRIMARY KEY, record_id TEXT UNIQUE NOT NULL, dataset_id TEXT NOT NULL, external_id TEXT,
    status TEXT, inserted_at TEXT, updated_at TEXT, fields TEXT, metadata TEXT, suggestions TEXT,
    responses TEXT, vectors TEXT);
CREATE INDEX IF NOT EXISTS docs_dataset ON docs(dataset_id, inserted_at);
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(body, field UNINDEXED, dataset_id UNINDEXED,
    tokenize = 'unicode61 remove_diacritics 2');
"""
_ready: set[str] = set()  # files whose schema this process has created (once per process, not per request)


def _db_path() -> str:
    path = os.environ.get("ASSAY_ARGILLA_SEARCH_DB")
    if not path:
        raise RuntimeError("ASSAY_ARGILLA_SEARCH_DB is not set; start the server through `assay review serve`")
    return path


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _quote(name: str) -> str:
    """A JSON path key, quoted so names with dots or dashes stay one key."""
    return '"' + name.replace('"', '\\"') + '"'


@SearchEngine.register(engine_name=ENGINE_NAME)
class SQLiteSearchEngine(SearchEngine):
    def __init__(self, path: str):
        self.conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        if path not in _ready:
            self.conn.executescript(_SCHEMA)
            _ready.add(path)

    @classmethod
    async def new_instance(cls) -> "SQLiteSearchEngine":
        return cls(_db_path())

    async def close(self):
        self.conn.close()

    async def ping(self) -> bool:
        return self.conn.execute("SELECT 1").fetchone() == (1,)

    async def info(self) -> dict:
        return {"distribution": "assay-sqlite", "number": sqlite3.sqlite_version}

    # -- indexes

    async def create_index(self, dataset: Dataset):
        self.conn.execute("INSERT OR IGNORE INTO indexes VALUES (?)", (str(dataset.id),))

    async def delete_index(self, dataset: Dataset):
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.execute("DELETE FROM fts WHERE dataset_id = ?", (str(dataset.id),))
            self.conn.execute("DELETE FROM docs WHERE dataset_id = ?", (str(dataset.id),))
            self.conn.execute("DELETE FROM indexes WHERE dataset_id = ?", (str(dataset.id),))

    async def configure_metadata_property(self, dataset: Dataset, metadata_property: MetadataProperty):
        pass  # documents are schemaless JSON; a new property needs no mapping

    async def configure_index_vectors(self, vector_settings: VectorSettings):
        pass

    # -- records

    async def index_records(self, dataset: Dataset, records: Iterable[Record]):
        names = {p.name for p in dataset.metadata_properties}
        text_fields = [f for f in dataset.fields if not f.is_image]
        with self.conn:
            self.conn.execute("BEGIN")
            for record in records:
                metadata = {k: v for k, v in (record.metadata_ or {}).items() if k in names and v is not None}
                fields = {f.name: record.fields.get(f.name) for f in text_fields}
                self.conn.execute(
                    "INSERT INTO docs (record_id, dataset_id, external_id, status, inserted_at, updated_at, fields,"
                    " metadata, suggestions, responses, vectors) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
                    " ON CONFLICT(record_id) DO UPDATE SET external_id=excluded.external_id, status=excluded.status,"
                    " inserted_at=excluded.inserted_at, updated_at=excluded.updated_at, fields=excluded.fields,"
                    " metadata=excluded.metadata, suggestions=excluded.suggestions, responses=excluded.responses,"
                    " vectors=excluded.vectors",
                    (str(record.id), str(dataset.id), record.external_id, _str(record.status),
                     _time(record.inserted_at), _time(record.updated_at), _json(fields), _json(metadata),
                     _json({s.question.name: _suggestion(s) for s in record.suggestions or []}),
                     _json([_response(r) for r in record.responses or []]),
                     _json({str(v.vector_settings_id): v.value for v in record.vectors or []})))
                rid = self.conn.execute("SELECT rid FROM docs WHERE record_id = ?", (str(record.id),)).fetchone()[0]
                self._index_text(rid, str(dataset.id), fields)

    def _index_text(self, rid: int, dataset_id: str, fields: dict) -> None:
        base = rid * FIELDS_PER_RECORD
        self.conn.execute("DELETE FROM fts WHERE rowid BETWEEN ? AND ?", (base, base + FIELDS_PER_RECORD - 1))
        for n, (name, value) in enumerate(sorted(fields.items())[:FIELDS_PER_RECORD]):
            if isinstance(value, list):  # a chat field: the messages' contents
                value = " ".join(str(m.get("content", "")) for m in value if isinstance(m, dict))
            if isinstance(value, str):  # the UI shows a text field as HTML: index the text it shows, so that
                value = html.unescape(value)  # "AT&amp;T" (how assay escapes "AT&T") is not found by "amp"
            if value is not None:
                self.conn.execute("INSERT INTO fts (rowid, body, field, dataset_id) VALUES (?,?,?,?)",
                                  (base + n, value if isinstance(value, str) else _json(value), name, dataset_id))

    async def partial_record_update(self, record: Record, **update):
        columns = {k: _str(v) for k, v in update.items() if k in ("status", "external_id")}
        if columns:
            assignments = ", ".join(f"{k} = ?" for k in columns)
            self.conn.execute(f"UPDATE docs SET {assignments} WHERE record_id = ?", (*columns.values(), str(record.id)))

    async def delete_records(self, dataset: Dataset, records: Iterable[Record]):
        with self.conn:
            self.conn.execute("BEGIN")
            for record in records:
                row = self.conn.execute("SELECT rid FROM docs WHERE record_id = ?", (str(record.id),)).fetchone()
                if row:
                    base = row[0] * FIELDS_PER_RECORD
                    self.conn.execute("DELETE FROM fts WHERE rowid BETWEEN ? AND ?",
                                      (base, base + FIELDS_PER_RECORD - 1))
                    self.conn.execute("DELETE FROM docs WHERE rid = ?", (row[0],))

    async def update_record_response(self, response: Response):
        self._edit_responses(str(response.record_id), str(response.id), _response(response))

    async def delete_record_response(self, response: Response):
        self._edit_responses(str(response.record_id), str(response.id), None)

    def _edit_responses(self, record_id: str, response_id: str, new: dict | None) -> None:
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")  # read-modify-write; the worker may write the same record
            row = self.conn.execute("SELECT responses FROM docs WHERE record_id = ?", (record_id,)).fetchone()
            if row is None:
                return
            responses = [r for r in json.loads(row[0] or "[]") if r.get("id") != response_id]
            if new is not None:
                responses.append(new)
            self.conn.execute("UPDATE docs SET responses = ? WHERE record_id = ?", (_json(responses), record_id))

    async def update_record_suggestion(self, suggestion: Suggestion):
        self.conn.execute("UPDATE docs SET suggestions = json_set(coalesce(suggestions, '{}'), ?, json(?))"
                          " WHERE record_id = ?",
                          (f"$.{_quote(suggestion.question.name)}", _json(_suggestion(suggestion)),
                           str(suggestion.record_id)))

    async def delete_record_suggestion(self, suggestion: Suggestion):
        self.conn.execute("UPDATE docs SET suggestions = json_remove(suggestions, ?) WHERE record_id = ?",
                          (f"$.{_quote(suggestion.question.name)}", str(suggestion.record_id)))

    # -- progress and metrics

    async def get_dataset_progress(self, dataset: Dataset) -> dict:
        if dataset.is_draft:
            return {}
        rows = self.conn.execute("SELECT status, count(*) FROM docs WHERE dataset_id = ? AND status IS NOT NULL"
                                 " GROUP BY status", (str(dataset.id),)).fetchall()
        return {"total": sum(n for _, n in rows), **dict(rows)}

    async def get_dataset_user_progress(self, dataset: Dataset, user: User) -> dict:
        if dataset.is_draft:
            return {}
        rows = self.conn.execute(
            "SELECT json_extract(r.value, '$.status') AS s, count(*) FROM docs, json_each(docs.responses) r"
            " WHERE docs.dataset_id = ? AND json_extract(r.value, '$.user_id') = ? GROUP BY s",
            (str(dataset.id), str(user.id))).fetchall()
        return {"total": sum(n for _, n in rows), **dict(rows)}

    async def compute_metrics_for(self, metadata_property: MetadataProperty) -> MetadataMetrics:
        path = f"$.{_quote(metadata_property.name)}"
        dataset_id = str(metadata_property.dataset_id)
        if metadata_property.type == MetadataPropertyType.terms:
            rows = self.conn.execute(
                "SELECT v.value, count(*) FROM docs, json_each(docs.metadata, ?) v WHERE dataset_id = ?"
                " GROUP BY v.value ORDER BY count(*) DESC, v.value", (path, dataset_id)).fetchall()
            return TermsMetrics(total=sum(n for _, n in rows),
                                values=[TermsMetrics.TermCount(term=str(t), count=n) for t, n in rows])
        low, high = self.conn.execute("SELECT min(json_extract(metadata, ?)), max(json_extract(metadata, ?))"
                                      " FROM docs WHERE dataset_id = ?", (path, path, dataset_id)).fetchone()
        if metadata_property.type == MetadataPropertyType.integer:
            return IntegerMetadataMetrics(min=low, max=high)
        return FloatMetadataMetrics(min=low, max=high)

    # -- search

    async def search(self, dataset: Dataset, query: Optional[Union[TextQuery, str]] = None,
                     filter: Optional[Filter] = None, sort: Optional[List[Order]] = None, offset: int = 0,
                     limit: int = 100, user_id: Optional[Any] = None) -> SearchResponses:
        # Elasticsearch orders a user's unsorted records randomly (seeded by the user); here they keep insertion
        # order, which assay's push makes least-agreement-first, so reviewers see the contested records first.
        matched = _text_matches(dataset, query)
        where, params = self._where(dataset, None, filter)
        source, score = "docs", "NULL"
        if matched is not None:  # bm25 per matching field row; a record scores as its best field
            source = f"docs JOIN ({matched[0]}) m ON m.mrid = docs.rid"
            params = matched[1] + params
            score = "max(m.s)"
        total = self.conn.execute(f"SELECT count(DISTINCT docs.rid) FROM {source} WHERE {where}", params).fetchone()[0]
        order = self._order_by(sort) if sort else []
        if matched is not None:
            order.append("score DESC")
        order.append("docs.inserted_at ASC, docs.rid ASC")
        rows = self.conn.execute(f"SELECT docs.record_id, {score} AS score FROM {source} WHERE {where}"
                                 f" GROUP BY docs.rid ORDER BY {', '.join(order)} LIMIT ? OFFSET ?",
                                 (*params, limit, offset)).fetchall()
        return SearchResponses(items=[SearchResponseItem(record_id=UUID(r), score=s) for r, s in rows], total=total)

    async def similarity_search(self, dataset: Dataset, vector_settings: VectorSettings,
                                value: Optional[List[float]] = None, record: Optional[Record] = None,
                                query: Optional[Union[TextQuery, str]] = None, filter: Optional[Filter] = None,
                                max_results: int = 100, order: SimilarityOrder = SimilarityOrder.most_similar,
                                threshold: Optional[float] = None) -> SearchResponses:
        if bool(value) == bool(record):
            raise ValueError("Must provide either vector value or record to compute the similarity search")
        excluded = str(record.id) if record else None
        if not value:
            value = record.vector_value_by_vector_settings(vector_settings)
        if not value:
            raise ValueError("Cannot find a vector value to apply with provided info")
        where, params = self._where(dataset, query, filter)
        key = f"$.{_quote(str(vector_settings.id))}"
        rows = self.conn.execute(f"SELECT record_id, json_extract(vectors, ?) FROM docs WHERE {where}"
                                 " AND json_extract(vectors, ?) IS NOT NULL", (key, *params, key)).fetchall()
        # brute force cosine: a personal review set is thousands of records, not millions
        qnorm = math.sqrt(sum(x * x for x in value)) or 1.0
        scored = []
        for record_id, raw in rows:
            if record_id == excluded:
                continue
            vec = json.loads(raw)
            norm = math.sqrt(sum(x * x for x in vec)) or 1.0
            cosine = sum(a * b for a, b in zip(value, vec)) / (qnorm * norm)
            scored.append(((1 + cosine) / 2, record_id))  # Elasticsearch's cosine score is in [0, 1]
        scored.sort(reverse=order != SimilarityOrder.least_similar)
        if threshold is not None:
            scored = [s for s in scored if s[0] >= threshold]
        items = [SearchResponseItem(record_id=UUID(r), score=s) for s, r in scored[:max_results]]
        return SearchResponses(items=items, total=len(items))

    def _where(self, dataset: Dataset, query, filter, *, text: bool = True) -> tuple[str, list]:
        clauses, params = ["docs.dataset_id = ?"], [str(dataset.id)]
        matched = _text_matches(dataset, query) if text else None
        if matched is not None:
            clauses.append(f"docs.rid IN (SELECT mrid FROM ({matched[0]}))")
            params += matched[1]
        if filter is not None:
            sql, more = _filter_sql(filter)
            clauses.append(sql)
            params += more
        return " AND ".join(clauses), params

    @staticmethod
    def _order_by(sort: List[Order]) -> list[str]:
        out = []
        for order in sort:
            direction = "DESC" if str(_str(order.order)) == SortOrder.desc.value else "ASC"
            scope = order.scope
            if isinstance(scope, ResponseFilterScope):
                user = f" AND json_extract(r.value, '$.user_id') = '{scope.user.id}'" if scope.user else ""
                prop = scope.question or scope.property
                out.append(f"(SELECT avg(json_extract(r.value, '$.{_quote(prop)}')) FROM json_each(docs.responses) r"
                           f" WHERE 1{user}) {direction}")
            else:
                expr, _ = _scope_expr(scope)
                out.append(f"{expr} {direction}")
        return out


# -- filters as SQL

def _scope_expr(scope) -> tuple[str, str | None]:
    """The SQL expression of a scope, and the JSON column plus path when its value may be a list."""
    if isinstance(scope, MetadataFilterScope):
        path = f"$.{_quote(scope.metadata_property)}"
        return f"json_extract(docs.metadata, '{path}')", f"docs.metadata, '{path}'"
    if isinstance(scope, SuggestionFilterScope):
        path = f"$.{_quote(scope.question)}.{_quote(scope.property)}"
        return f"json_extract(docs.suggestions, '{path}')", f"docs.suggestions, '{path}'"
    if isinstance(scope, RecordFilterScope):
        if scope.property not in ("id", "external_id", "status", "inserted_at", "updated_at"):
            raise ValueError(f"Cannot process request for search scope {scope}")
        return ("docs.record_id" if scope.property == "id" else f"docs.{scope.property}"), None
    raise ValueError(f"Cannot process request for search scope {scope}")


def _filter_sql(filter: Filter) -> tuple[str, list]:
    if isinstance(filter, AndFilter):
        parts = [_filter_sql(f) for f in filter.filters]
        if not parts:
            return "1", []
        return "(" + " AND ".join(p for p, _ in parts) + ")", [x for _, more in parts for x in more]
    if isinstance(filter.scope, ResponseFilterScope):
        return _response_filter_sql(filter)
    expr, each = _scope_expr(filter.scope)
    return _match_sql(filter, expr, each)


def _match_sql(filter: Filter, expr: str, each: str | None) -> tuple[str, list]:
    if isinstance(filter, TermsFilter):
        values = [_str(v) for v in filter.values]
        marks = ",".join("?" * len(values)) or "NULL"
        if each:  # a label list matches when any of its labels is one of the values
            return f"EXISTS (SELECT 1 FROM json_each({each}) e WHERE e.value IN ({marks}))", values
        return f"{expr} IN ({marks})", values
    if isinstance(filter, RangeFilter):
        parts, params = [], []
        if filter.ge is not None:
            parts.append(f"{expr} >= ?")
            params.append(filter.ge)
        if filter.le is not None:
            parts.append(f"{expr} <= ?")
            params.append(filter.le)
        return "(" + (" AND ".join(parts) or f"{expr} IS NOT NULL") + ")", params
    raise ValueError(f"Cannot process request for filter {filter}")


def _response_filter_sql(filter: Filter) -> tuple[str, list]:
    scope: ResponseFilterScope = filter.scope
    user = [str(scope.user.id)] if scope.user else []
    by_user = " AND json_extract(r.value, '$.user_id') = ?" if scope.user else ""
    if scope.question:
        path = f"$.{_quote(scope.question)}"
        inner, params = _match_sql(filter, f"json_extract(r.value, '{path}')", f"r.value, '{path}'")
        return f"EXISTS (SELECT 1 FROM json_each(docs.responses) r WHERE {inner}{by_user})", params + user
    if scope.property != "status" or not isinstance(filter, TermsFilter):
        raise ValueError(f"Cannot process filter scope {scope}")
    values = [_str(v) for v in filter.values]
    parts, params = [], []
    if ResponseStatusFilter.pending.value in values:
        # pending: no response from this user (or, without a user, no response at all)
        parts.append(f"NOT EXISTS (SELECT 1 FROM json_each(docs.responses) r WHERE 1{by_user})")
        params += user
        values = [v for v in values if v != ResponseStatusFilter.pending.value]
    if values:
        marks = ",".join("?" * len(values))
        parts.append(f"EXISTS (SELECT 1 FROM json_each(docs.responses) r"
                     f" WHERE json_extract(r.value, '$.status') IN ({marks}){by_user})")
        params += values + user
    return "(" + (" OR ".join(parts) or "1") + ")", params


def _text_matches(dataset: Dataset, query) -> tuple[str, list] | None:
    """A subquery of (mrid, s): the record rowid and bm25 score of each field row matching the text query."""
    if query is None:
        return None
    text = TextQuery(q=query) if isinstance(query, str) else query
    match = _fts_query(text.q)
    if match is None:
        return None
    by_field = " AND field = ?" if text.field else ""
    return (f"SELECT rowid / {FIELDS_PER_RECORD} AS mrid, -rank AS s FROM fts"
            f" WHERE fts MATCH ? AND dataset_id = ?{by_field}",
            [match, str(dataset.id)] + ([text.field] if text.field else []))


def _fts_query(q: str) -> str | None:
    """Elasticsearch's simple_query_string with AND as default operator, as an FTS5 query: every word must
    occur; a trailing * is a prefix; "quoted words" are a phrase. None (match everything) for no words."""
    terms = []
    for phrase, word in re.findall(r'"([^"]*)"|(\S+)', q):
        if phrase:
            words = re.findall(r"\w+", phrase)
            if words:
                terms.append('"' + " ".join(words) + '"')
            continue
        prefix = word.endswith("*")
        for token in re.findall(r"\w+", word):
            terms.append(f'"{token}"')
        if prefix and terms:
            terms[-1] += "*"
    return " AND ".join(terms) if terms else None


def _suggestion(s: Suggestion) -> dict:
    return {"type": _str(s.type), "agent": s.agent, "score": s.score, "value": s.value}


def _response(r: Response) -> dict:
    return {"id": str(r.id), "status": _str(r.status), "user_id": str(r.user_id),
            **{q: v.get("value") for q, v in (r.values or {}).items()}}


def _str(value: Any) -> Any:
    return getattr(value, "value", value)


def _time(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
