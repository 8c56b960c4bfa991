"""The ship report: one self-contained HTML file rendered from a run's results.json (evals/SCHEMA.md).

Everything the page needs is inside it (CSS, JS, SVG charts, the examples as embedded JSON), so it
opens from file:// with no request to any host. Note text is hostile input (Evernote exports carry
<script> and onerror= attributes): Jinja autoescapes every value, the embedded JSON has <, >, &
and U+2028/9 escaped so nothing in it can close its <script> element, the page's JS writes text
with textContent only, and a Content-Security-Policy allows no script but the page's own (by hash).
"""

from __future__ import annotations

import base64
import bisect
import functools
import hashlib
import json
import os
import statistics
import tempfile
from pathlib import Path

from assay import shipped
from assay.errors import InputError
from assay.evals import report_charts as charts
from assay.evals.results import validate
from assay.redact import mask_urls_in

TEMPLATES = shipped.folder("evals") / "templates"
PAGE_SIZE = 25
_JSON_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


@functools.cache
def _env():
    import jinja2

    # lenient Undefined: optional schema fields (lineage.review, training.device...) read as "not recorded"
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = charts.fmt
    env.filters["pct"] = lambda x: "n/a" if x is None else f"{x * 100:.0f}%"  # a human review with no answers yet
    return env


def _static(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def script_json(obj) -> str:
    """JSON safe inside <script>: no <, >, & or line separators survive unescaped."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for raw, escaped in _JSON_ESCAPES:  # str.replace: ~10x faster than str.translate on non-ASCII text
        text = text.replace(raw, escaped)
    return text


def _check(results: dict, where: str) -> None:
    validate(results, where)  # the shape of results.json (evals/results.py): a bad field is one line naming it


def _page(template: str, **ctx) -> str:
    """Render with the page's CSS and JS inline and a CSP that only lets that JS run."""
    from markupsafe import Markup

    js = _static("report.js")
    digest = base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode()
    return _env().get_template(template).render(
        css=Markup(_static("report.css")), js=Markup(js), script_hash=f"sha256-{digest}", **ctx)


def render(results: dict, where: str = "results.json") -> str:
    """The report page for one eval run."""
    _check(results, where)
    results = mask_urls_in(results)  # a teacher's spec, its URL's credentials included, is a contestant's key
    from markupsafe import Markup

    suite = results["suite"]
    metrics = results["metrics"]
    models = results["models"]
    label = {m["key"]: m["label"] for m in models}
    headline = next((m for m in metrics if m["name"] == suite.get("headline")), metrics[0] if metrics else None)
    table, notes = _metric_table(results)
    return _page(
        "report.html.j2", r=results, suite=suite, models=models, label=label, table=table, footnotes=notes,
        cand=label[results["candidate"]], headline=headline, warnings=results.get("warnings") or [],
        verdict=results["verdict"],
        failing=[x for x in results["verdict"].get("rules", []) if x.get("passed") is False],
        skipped=[x for x in results["verdict"].get("rules", []) if x.get("passed") is None],
        passing=[x for x in results["verdict"].get("rules", []) if x.get("passed")],
        chart_list=_charts(results, headline, label), lineage=_lineage(results),
        human=results.get("human"), ondevice=_ondevice(results),
        details=_details(results, label),
        data=Markup(script_json(_viewer_data(results, headline))), page_size=PAGE_SIZE)


def write_report(results: dict, folder: Path) -> Path:
    """Write folder/index.html atomically (temp file in the same folder, then rename)."""
    html = render(results, str(Path(folder) / "results.json"))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "index.html"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".index.", suffix=".html.tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(html)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def compare_html(a: dict, b: dict) -> str:
    """Two runs of the same suite side by side (B against A); runs of different suite versions, tasks or data
    are refused."""
    _check(a, a.get("run_id", "run A") if isinstance(a, dict) else "run A")
    _check(b, b.get("run_id", "run B") if isinstance(b, dict) else "run B")
    a, b = mask_urls_in(a), mask_urls_in(b)
    sa, sb = a["suite"], b["suite"]
    for field, what, va, vb in (("suite.version", "suites", f"{sa['name']} v{sa['version']}",
                                 f"{sb['name']} v{sb['version']}"), ("suite.task", "tasks", sa["task"], sb["task"]),
                                ("suite.data", "data", sa["data"], sb["data"])):
        if va != vb:  # a difference between two runs means something only when they answered the same questions
            raise InputError(f"cannot compare runs of different {what}: {a['run_id']} used {va}, {b['run_id']} used "
                             f"{vb}; rerun one of them with the other's suite version and data", file=b["run_id"],
                             field=field, value=vb)
    from markupsafe import Markup

    names = {m["name"] for m in b["metrics"]}
    metrics = [m for m in a["metrics"] if m["name"] in names]
    headline = next((m for m in metrics if m["name"] == sa.get("headline")), metrics[0] if metrics else None)
    ca, cb = a["candidate"], b["candidate"]
    la = next(m["label"] for m in a["models"] if m["key"] == ca)
    lb = next(m["label"] for m in b["models"] if m["key"] == cb)
    rows = []
    for m in metrics:
        va, vb = a["scores"].get(ca, {}).get(m["name"]), b["scores"].get(cb, {}).get(m["name"])
        diff = None if va is None or vb is None else vb - va
        rows.append({"m": m, "a": _val(va, m), "b": _val(vb, m), "diff": _val(diff, m, signed=True),
                     "cls": _colour(m, diff, diff, diff)})
    # the example viewer compares run B's candidate against run A's on the examples both runs scored
    by_id = {e["id"]: e for e in a["examples"]}
    joined = []
    for e in b["examples"]:
        if e["id"] in by_id:
            ea = by_id[e["id"]]
            joined.append({**e, "predictions": {"A": ea["predictions"].get(ca), "B": e["predictions"].get(cb)},
                           "scores": {"A": ea["scores"].get(ca, {}), "B": e["scores"].get(cb, {})}})
    h = headline["name"] if headline else None
    drops = sorted(((e["scores"]["B"].get(h) or 0) - (e["scores"]["A"].get(h) or 0), e["id"]) for e in joined
                   if h and e["scores"]["A"].get(h) is not None and e["scores"]["B"].get(h) is not None)
    view = {"schema": 1, "suite": sa, "candidate": "B", "metrics": a["metrics"], "examples": joined,
            "models": [{"key": "A", "label": f"A: {la}", "kind": "previous"},
                       {"key": "B", "label": f"B: {lb}", "kind": "candidate"}],
            "regressions": {"A": [{"id": i, "delta": d} for d, i in drops if d < 0]}}
    return _page("compare.html.j2", a=a, b=b, la=la, lb=lb, suite=sa, rows=rows, headline=headline,
                 n_joined=len(joined), data=Markup(script_json(_viewer_data(view, headline))), page_size=PAGE_SIZE)


def _decimals(values: list[float]) -> int:
    top = max((abs(v) for v in values), default=0.0)
    return 0 if top >= 100 else 1 if top >= 10 else 2 if top >= 0.1 or top == 0 else 3


def _val(x, metric: dict, signed: bool = False, places: int | None = None) -> str | None:
    if x is None:
        return None
    v = x * (metric.get("scale") or 1)
    d = places if places is not None else _decimals([v])
    return f"{v:+.{d}f}" if signed else f"{v:.{d}f}"


def _colour(metric: dict, delta, lo, hi) -> str:
    """good/bad when the whole CI is on one side of zero, unclear when it straddles, '' with no direction."""
    hib = metric.get("higher_is_better")
    if hib is None or delta is None:
        return ""
    if lo is None or hi is None or lo <= 0 <= hi:
        return "unclear"
    return "good" if (lo > 0) == bool(hib) else "bad"


def _metric_table(results: dict) -> tuple[list[dict], list[str]]:
    """Rows of the metric table (values scaled, deltas with CIs) and the footnotes for n/a cells."""
    models, scores, missing = results["models"], results["scores"], results.get("missing") or {}
    comps = {(c["metric"], c["baseline"]): c for c in results.get("comparisons") or []}
    baselines = [m for m in models if m["key"] != results["candidate"]]
    notes: list[str] = []
    rows = []
    for metric in results["metrics"]:
        name, scale = metric["name"], metric.get("scale") or 1
        raw = [scores.get(m["key"], {}).get(name) for m in models]
        places = _decimals([v * scale for v in raw if v is not None])
        cells = []
        for m, v in zip(models, raw):
            if v is None:
                why = (missing.get(m["key"]) or {}).get(name) or "no value and no reason recorded"
                notes.append(f"{m['label']}, {metric['label']}: {why}")
                cells.append({"text": "n/a", "why": why, "note": len(notes), "cand": m["key"] == results["candidate"]})
            else:
                cells.append({"text": _val(v, metric, places=places), "why": None, "note": None,
                              "cand": m["key"] == results["candidate"]})
        deltas = []
        for m in baselines:
            c = comps.get((name, m["key"]))
            if c is None or c.get("delta") is None:
                deltas.append({"text": "–", "ci": "", "cls": "", "tip": f"not compared with {m['label']}"})
                continue
            dp = max(places, 1)
            ci = f"[{_val(c['ci_low'], metric, True, dp)}, {_val(c['ci_high'], metric, True, dp)}]"
            deltas.append({"text": _val(c["delta"], metric, True, dp), "ci": ci,
                           "cls": _colour(metric, c["delta"], c.get("ci_low"), c.get("ci_high")),
                           "tip": f"candidate minus {m['label']}, 95% CI {ci}, n={c.get('n')}, {c.get('verdict', '')}"
                                  + (f"; {c['missing']} example(s) without an answer left out" if c.get("missing")
                                     else "")})
        rows.append({"m": metric, "cells": cells, "deltas": deltas,
                     "headline": name == results["suite"].get("headline")})
    return rows, notes


def _charts(results: dict, headline: dict | None, label: dict) -> list[dict]:
    training = results.get("training")
    log = (training or {}).get("log") or []
    curves = [(name, cls, [(float(r["step"]), float(r[key])) for r in log if r.get(key) is not None and "step" in r])
              for key, name, cls in (("loss", "training loss", "s1"), ("eval_loss", "validation loss", "s2"),
                                     ("base_loss", "base model, before training", "s3"))]
    why_train = "this run has no training record (the model was not trained by assay)" if training is None else \
        "the training log has no loss values"
    out = [charts.line_chart("Training loss by step", curves, "step", why_train)]

    metrics = {m["name"]: m for m in results["metrics"]}
    by_metric: dict[str, list[dict]] = {}
    for c in results.get("comparisons") or []:
        m = metrics.get(c["metric"])
        if m is None or c.get("delta") is None or c.get("ci_low") is None:
            continue
        k = m.get("scale") or 1
        cls = _colour(m, c["delta"], c["ci_low"], c["ci_high"]) or "plain"
        by_metric.setdefault(c["metric"], []).append({
            "label": f"vs {label.get(c['baseline'], c['baseline'])}", "v": c["delta"] * k, "lo": c["ci_low"] * k,
            "hi": c["ci_high"] * k, "cls": cls,
            "tip": f"vs {label.get(c['baseline'], c['baseline'])}: {charts.fmt(c['delta'] * k)} "
                   f"[{charts.fmt(c['ci_low'] * k)}, {charts.fmt(c['ci_high'] * k)}]"})
    if not by_metric:
        out.append(charts.interval_chart("Metric deltas (candidate minus baseline, 95% CI)", [], "",
                                         "no baseline was compared with the candidate in this run"))
    for name, rows in by_metric.items():
        m = metrics[name]
        better = {True: "right is better", False: "left is better", None: "no better side"}[m.get("higher_is_better")]
        out.append(charts.interval_chart(f"{m['label']}: candidate minus baseline, 95% CI", rows,
                                         f"delta ({better})", ""))

    suite = results["suite"]
    hname = headline["label"] if headline else suite.get("headline", "headline")
    out.append(charts.trend_chart(
        f"{hname} across registered versions", results.get("trend") or [], (headline or {}).get("scale") or 1,
        f"no registered version of this model has a {hname} score on suite {suite.get('name')} "
        f"v{suite.get('version')}"))
    dev = results.get("ondevice") or []
    why_dev = "no export of this model was measured on device in this run"
    out.append(charts.interval_chart(
        "Latency per example by export format (small dots; p50 dot, bar to p95)",
        [{"label": d["format"], "v": d["latency_p50_ms"], "lo": d["latency_p50_ms"], "hi": d["latency_p95_ms"],
          "points": d.get("latency_ms") or [], "cls": "plain",
          "tip": f"{d['format']}: p50 {charts.fmt(d['latency_p50_ms'])} ms, p95 {charts.fmt(d['latency_p95_ms'])} ms"}
         for d in dev if d.get("latency_p50_ms") is not None and d.get("latency_p95_ms") is not None],
        "milliseconds", why_dev, zero=False))
    out.append(charts.bar_chart("Size on disk per export format",
                                [(d["format"], d["size_mb"], f"{d['format']}: {charts.fmt(d['size_mb'])} MB")
                                 for d in dev if d.get("size_mb") is not None], "MB", why_dev))
    return out


DEVICE_COLUMNS = {"size_mb": "size MB", "latency_p50_ms": "latency p50 ms", "latency_p95_ms": "latency p95 ms",
                  "ttft_ms": "first token ms", "tokens_per_s": "tokens/s", "peak_memory_mb": "peak memory MB"}


def _ondevice(results: dict) -> dict:
    """The on-device table: the schema's figures first, then any other field the exports report."""
    rows = results.get("ondevice") or []
    extra = [k for k in dict.fromkeys(k for r in rows for k in r if not isinstance(r[k], (list, dict)))
             if k != "format" and k not in DEVICE_COLUMNS]  # lists (every example's latency) go to the chart
    cols = [(k, DEVICE_COLUMNS.get(k, k)) for k in [*DEVICE_COLUMNS, *extra] if any(r.get(k) is not None for r in rows)]
    cells = [[("n/a" if r.get(k) is None else charts.fmt(r[k]) if isinstance(r[k], (int, float)) else str(r[k]),
               k in DEVICE_COLUMNS)
              for k, _ in cols] for r in rows]
    return {"cols": [c for _, c in cols], "rows": [(str(r.get("format", "?")), c) for r, c in zip(rows, cells)]}


def _details(results: dict, label: dict) -> list[dict]:
    """Confusion matrices and per-class precision/recall (classification suites)."""
    out = []
    for key, d in (results.get("details") or {}).items():
        conf = d.get("confusion")
        peak = max((v for row in conf["matrix"] for v in row), default=0) if conf else 0
        per_class = d.get("per_class") or {}
        cols = sorted({k for v in per_class.values() for k in v}, key=lambda k: (k not in ("precision", "recall"), k))
        out.append({"label": label.get(key, key), "conf": conf, "peak": peak or 1, "per_class": per_class,
                    "cols": cols})
    return out


# readable names for lineage keys; a key not listed here still shows, under its own name
NAMES = {
    "dataset": "dataset version", "dataset_hash": "content hash", "versions": "version chain (newest first)",
    "rows_in": "notes in", "kept": "kept", "export": "exported from", "teachers": "teachers",
    "spend_usd": "total spend (USD)", "synth_spend_usd": "spend on synthetic data (USD)",
    "remote_calls": "calls to remote teachers", "redacted": "notes redacted before sending",
    "synth_rows_left_machine": "notes sent to remote teachers (synthesis)",
    "synth_rows_redacted": "of those, with personal data redacted", "coverage": "coverage", "agreement": "agreement",
    "base_model": "base model", "hardware": "trained on", "eval_hardware": "evaluated on",
    "eval": "sent during this eval", "wall_time_s": "wall time (s)",
    "eval_teacher_calls": "teacher calls during this eval",
}
PERCENT = {"coverage", "agreement"}
GROUPS = [  # (heading, lineage keys, what to say when there is nothing)
    ("Data", ("dataset", "dataset_hash", "versions", "curation"), "no dataset recorded"),
    ("Teachers and spend", ("teachers", "spend_usd", "synth_spend_usd", "eval_teacher_calls"), "no teacher recorded"),
    ("What left this machine", ("egress",), "no egress record for this run"),
    ("Human review", ("review",), "no human review: every training example came from teachers or rules"),
    ("Model and hardware", ("base_model", "hardware", "eval_hardware"), "not recorded"),
]


def _lineage(results: dict) -> list[dict]:
    """Lineage as titled key/value tables; keys the groups do not name go under "Other"."""
    lin = dict(results.get("lineage") or {})
    training = results.get("training") or {}
    config = lin.pop("training_config", None) or training.get("config")
    groups = []
    for title, keys, empty in GROUPS:
        # a dict-valued key (curation, egress, review) spreads into its own rows; a plain value keeps its name
        pairs = [kv for k in keys if lin.get(k) not in (None, {}, [])
                 for kv in _flatten(lin[k], "" if isinstance(lin[k], dict) else k)]
        if title == "Data" and results["suite"].get("data"):
            pairs.append(("suite data", str(results["suite"]["data"])))
        if title == "Model and hardware" and training:  # the run's own record: recipe, device, time, final metrics
            pairs += [(f"training.{k}", v)
                      for k, v in _flatten({k: training[k] for k in ("recipe", "device", "wall_time_s", "metrics")
                                            if training.get(k) is not None})]
        note = None
        if title == "What left this machine" and lin.get("egress") is not None:
            sent = [v for k, v in _flatten(lin["egress"]) if "left" in k or "remote" in k or "sent" in k]
            note = "Nothing left this machine." if sent and all(v in ("0", "0.0") for v in sent) else None
        pairs = [(k, f"{float(v) * 100:.0f}%" if k.rsplit(".", 1)[-1] in PERCENT and _is_number(v) else v)
                 for k, v in pairs]
        groups.append({"title": title,
                       "pairs": [(" \u203a ".join(NAMES.get(p, p) for p in k.split(".")), v) for k, v in pairs],
                       "empty": empty, "note": note})
        for k in keys:
            lin.pop(k, None)
    other = [kv for k, v in lin.items() if v not in (None, {}, []) for kv in _flatten(v, k)]
    if other:
        groups.append({"title": "Other", "pairs": other, "empty": "", "note": None})
    groups.append({"title": "Training config", "pairs": _flatten(config) if config else [],
                   "empty": "no training config recorded", "note": None, "fold": True})
    groups.append({"title": "Suite config", "pairs": _flatten(results["suite"].get("config") or {}),
                   "empty": "no suite config recorded", "note": None, "fold": True})
    return groups


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _flatten(obj, prefix: str = "") -> list[tuple[str, str]]:
    """Nested config as dotted key/value pairs for a readable table."""
    if prefix and not prefix.endswith("."):
        prefix += "."
    if isinstance(obj, dict):
        return [kv for k, v in obj.items() for kv in _flatten(v, f"{prefix}{k}.")] or [(prefix[:-1], "none")]
    if isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        return [kv for i, v in enumerate(obj) for kv in _flatten(v, f"{prefix}{i}.")]
    text = ", ".join(map(str, obj)) if isinstance(obj, list) else "not recorded" if obj is None else str(obj)
    return [(prefix[:-1], text)]


def _viewer_data(results: dict, headline: dict | None) -> dict:
    """What the example viewer's JS needs, compact: examples, models, headline, regressions, length buckets."""
    examples = results["examples"]
    words = [e.get("words") if e.get("words") is not None else len(e.get("text", "").split()) for e in examples]
    edges = [round(q) for q in statistics.quantiles(words, n=3)] if len(set(words)) > 2 else []
    buckets = ([f"short (up to {edges[0]} words)", f"medium ({edges[0] + 1} to {edges[1]} words)",
                f"long (over {edges[1]} words)"] if edges else [])
    rows = []
    for e, w in zip(examples, words):
        rows.append({"id": e["id"], "t": e.get("title") or "", "x": e.get("text") or "", "r": e.get("reference") or "",
                     "c": e.get("category") or "", "w": w, "b": bisect.bisect_left(edges, w),
                     "p": e.get("predictions") or {}, "s": e.get("scores") or {}, "f": e.get("failures") or {}})
    # only the fields the page's JS reads: a key results.json may carry beyond the schema (a NaN in it) stays out
    models = [{k: m[k] for k in ("key", "label", "kind")} for m in results["models"]]
    regressions = {k: [{"id": r["id"], "delta": r["delta"]} for r in worse]
                   for k, worse in (results.get("regressions") or {}).items()}
    return {"candidate": results["candidate"], "models": models, "buckets": buckets,
            "headline": (None if headline is None
                         else {k: headline.get(k) for k in ("name", "label", "scale", "higher_is_better")}),
            "regressions": regressions, "examples": rows, "pageSize": PAGE_SIZE}
