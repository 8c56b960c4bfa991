/* The example viewer: filters, search and paging over the examples embedded as JSON.
   Only one page of rows is ever in the DOM, so 5,000 examples stay fast. Every piece of note or
   model text is written with textContent / text nodes, never as HTML. */
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("report-data").textContent);
  var $ = function (id) { return document.getElementById(id); };
  var H = D.headline, cand = D.candidate, ex = D.examples;
  var label = {}, baselines = [];
  D.models.forEach(function (m) { label[m.key] = m.label; if (m.key !== cand) baselines.push(m); });
  var byId = new Map(ex.map(function (e, i) { return [e.id, i]; }));
  var state = { baseline: baselines.length ? baselines[0].key : "", regressions: false, category: "",
                bucket: "", diff: "", q: "", page: 0 };
  var hay = null, matches = [];
  var DIFF_LIMIT = 1500000;  // word pairs; above it a diff would stall the page

  function el(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined && text !== null) n.textContent = text;
    return n;
  }
  function option(sel, value, text) { var o = el("option", null, text); o.value = value; sel.appendChild(o); }
  function fmt(v) {
    if (v === null || v === undefined) return "n/a";
    var x = v * (H && H.scale ? H.scale : 1), a = Math.abs(x);
    return x.toFixed(a >= 100 || x === Math.round(x) ? 0 : a >= 1 ? 1 : 3);
  }
  function headScore(e, key) { var s = e.s[key]; return s && H ? s[H.name] : null; }

  baselines.forEach(function (m) { option($("f-baseline"), m.key, m.label); });
  if (!baselines.length) {
    option($("f-baseline"), "", "no baseline in this run");
    $("f-regressions").disabled = true;
  }
  Array.from(new Set(ex.map(function (e) { return e.c; }).filter(Boolean))).sort()
    .forEach(function (c) { option($("f-category"), c, c); });
  D.buckets.forEach(function (b, i) { option($("f-length"), String(i), b); });
  if (!D.buckets.length) $("f-length").disabled = true;
  option($("f-diff"), "", "the reference");
  baselines.forEach(function (m) { option($("f-diff"), m.key, m.label); });

  function haystack() {
    if (hay === null) {
      hay = ex.map(function (e) {
        var parts = [e.t, e.x, e.r, e.c, e.id];
        for (var k in e.p) parts.push(e.p[k] || "");
        return parts.join("\n").toLowerCase();
      });
    }
    return hay;
  }

  function filter() {
    var idx;
    if (state.regressions) {
      idx = (D.regressions[state.baseline] || []).map(function (r) { return byId.get(r.id); })
        .filter(function (i) { return i !== undefined; });
    } else {
      idx = ex.map(function (_, i) { return i; });
    }
    if (state.category) idx = idx.filter(function (i) { return ex[i].c === state.category; });
    if (state.bucket !== "") idx = idx.filter(function (i) { return String(ex[i].b) === state.bucket; });
    var words = state.q.toLowerCase().split(/\s+/).filter(Boolean);
    if (words.length) {
      var h = haystack();
      idx = idx.filter(function (i) { return words.every(function (w) { return h[i].indexOf(w) >= 0; }); });
    }
    matches = idx;
    state.page = 0;
  }

  function tokens(text) { return (text || "").split(/\s+/).filter(Boolean); }
  function norm(w) { return w.toLowerCase().replace(/^[^\p{L}\p{N}]+|[^\p{L}\p{N}]+$/gu, ""); }

  // word-level LCS diff of `a` (the candidate) against `b` (the text it is compared with)
  function diff(a, b, into) {
    var x = tokens(a), y = tokens(b), n = x.length, m = y.length;
    if (n * m > DIFF_LIMIT) {
      into.appendChild(document.createTextNode(a));
      into.appendChild(el("div", "muted small", "(too long to diff: " + n + " x " + m + " words)"));
      return;
    }
    var nx = x.map(norm), ny = y.map(norm), w = m + 1, L = new Uint32Array((n + 1) * w);
    for (var i = n - 1; i >= 0; i--) {
      for (var j = m - 1; j >= 0; j--) {
        L[i * w + j] = nx[i] === ny[j] ? L[(i + 1) * w + j + 1] + 1 : Math.max(L[(i + 1) * w + j], L[i * w + j + 1]);
      }
    }
    var ops = [], p = 0, q = 0;
    while (p < n || q < m) {
      if (p < n && q < m && nx[p] === ny[q]) { ops.push([0, x[p]]); p++; q++; }
      else if (q >= m || (p < n && L[(p + 1) * w + q] >= L[p * w + q + 1])) { ops.push([1, x[p]]); p++; }
      else { ops.push([-1, y[q]]); q++; }
    }
    var run = [], kind = 0;
    function flush() {
      if (!run.length) return;
      var t = run.join(" ");
      into.appendChild(kind === 0 ? document.createTextNode(t) : el(kind > 0 ? "ins" : "del", null, t));
      into.appendChild(document.createTextNode(" "));
      run = [];
    }
    ops.forEach(function (o) { if (o[0] !== kind) { flush(); kind = o[0]; } run.push(o[1]); });
    flush();
  }

  function output(e, key, isCand) {
    var box = el("div", "out" + (isCand ? " cand" : ""));
    var head = el("div", "label");
    head.appendChild(el("span", "who", label[key]));
    var v = headScore(e, key);
    if (H) head.appendChild(el("span", "score", H.label + " " + fmt(v)));
    if (!isCand && H && v !== null && v !== undefined) {
      var c = headScore(e, cand);
      if (c !== null && c !== undefined) {
        var d = c - v, good = H.higher_is_better === null ? "" : ((d > 0) === !!H.higher_is_better ? "good" : "bad");
        head.appendChild(el("span", "chip " + (d === 0 ? "unclear" : good), "candidate " + (d >= 0 ? "+" : "") + fmt(d)));
      }
    }
    box.appendChild(head);
    var text = e.p[key];
    var body = el("div", "prose");
    if (text === null || text === undefined)
      body.appendChild(el("span", "muted", "no output from this model" + (e.f && e.f[key] ? " (" + e.f[key] + ")" : "")));
    else if (isCand) {
      var other = state.diff ? e.p[state.diff] : e.r;
      if (other === null || other === undefined) body.textContent = text;
      else diff(text, other, body);
    } else body.textContent = text;
    box.appendChild(body);
    return box;
  }

  function row(e) {
    var art = el("article", "ex");
    var head = el("header");
    head.appendChild(el("h3", null, e.t || "(untitled note)"));
    if (e.c) head.appendChild(el("span", "tag", e.c));
    head.appendChild(el("span", "muted small", e.w + " words \u00b7 " + e.id));
    art.appendChild(head);
    var body = el("div", "ex-body");
    var note = el("div", "note");
    note.appendChild(el("div", "label", "Note"));
    var text = el("div", e.x.length > 600 ? "prose clamp" : "prose", e.x);
    note.appendChild(text);
    if (e.x.length > 600) {
      var more = el("button", "link", "show the whole note");
      more.type = "button";
      more.addEventListener("click", function () {
        var open = text.classList.toggle("clamp");
        more.textContent = open ? "show the whole note" : "show less";
      });
      note.appendChild(more);
    }
    body.appendChild(note);
    var outs = el("div", "outs");
    var ref = el("div", "out ref");
    ref.appendChild(el("div", "label", "Reference"));
    ref.appendChild(el("div", "prose", e.r));
    outs.appendChild(ref);
    outs.appendChild(output(e, cand, true));
    baselines.forEach(function (m) { outs.appendChild(output(e, m.key, false)); });
    body.appendChild(outs);
    art.appendChild(body);
    return art;
  }

  function draw() {
    var size = D.pageSize, pages = Math.max(1, Math.ceil(matches.length / size));
    state.page = Math.min(state.page, pages - 1);
    var start = state.page * size, slice = matches.slice(start, start + size);
    var list = $("ex-list"), frag = document.createDocumentFragment();
    slice.forEach(function (i) { frag.appendChild(row(ex[i])); });
    list.replaceChildren(frag);
    if (!slice.length) list.appendChild(el("p", "nodata", "No example matches these filters."));
    var count = $("ex-count");
    count.dataset.count = String(matches.length);
    count.textContent = matches.length + " of " + ex.length + " examples" +
      (slice.length ? " \u00b7 showing " + (start + 1) + "\u2013" + (start + slice.length) : "");
    $("p-page").textContent = "page " + (state.page + 1) + " of " + pages;
    $("p-prev").disabled = state.page === 0;
    $("p-next").disabled = state.page >= pages - 1;
  }

  function update() { filter(); draw(); }
  function bind(id, key, ev) {
    $(id).addEventListener(ev || "change", function (e) {
      state[key] = e.target.type === "checkbox" ? e.target.checked : e.target.value;
      update();
    });
  }
  bind("f-baseline", "baseline");
  bind("f-regressions", "regressions");
  bind("f-category", "category");
  bind("f-length", "bucket");
  $("f-diff").addEventListener("change", function (e) { state.diff = e.target.value; draw(); });
  var timer = null;
  $("f-search").addEventListener("input", function (e) {
    clearTimeout(timer);
    timer = setTimeout(function () { state.q = e.target.value; update(); }, 120);
  });
  function go(step) { state.page += step; draw(); $("examples").scrollIntoView({ block: "start" }); }
  $("p-prev").addEventListener("click", function () { go(-1); });
  $("p-next").addEventListener("click", function () { go(1); });
  update();
})();
