"""Quality: does the shipped SFT recipe make the student better than its base model on held-out data?

    python benchmarks/bench_quality.py                        # every set and size (about 3 h on 2 idle CPU cores)
    python benchmarks/bench_quality.py --sets paper --sizes 100 -o train.learning_rate=4e-4   # one cell, tuning

Data nobody on this project wrote: ACLSum (Takeshita et al., 2024; the `aclsum` 0.1.2 wheel on PyPI,
MIT licence), 250 ACL papers, each with three one-sentence summaries written by experts (the paper's
challenge, approach and outcome). The document is the paper's abstract. Two tasks are made from it:
  paper   the three sentences together (median 68 words) as the summary: `task: summarize`, the
          recipe's own instruction, exactly what a user with a notes export of this kind trains on
  aspect  one aspect per row, with an instruction naming it; 3 rows per paper, so 300 training rows
          exist (ACLSum has 100 training papers)
plus the sample export's human summaries (15 in notes.json to train, the 30 gold ones to test).
Training rows come from ACLSum's train split, validation rows (the best-checkpoint choice) from its
val split, and test rows from its test split, which nothing here is tuned on.

Each student is trained by `training.run` with `training/configs/sft-smollm2.yaml` and the
overrides given (none by default) in its own process, which also writes its test predictions and
reports its peak RSS. The base model (SmolLM2-135M-Instruct, zero-shot, same prompt, same greedy
generation) and the lead-sentences rule (`curation.synth.teachers.lead`) answer the same test rows.
Scores: ROUGE-1/2/L from `evals.metrics` (rouge-score, stemming), paired bootstrap 95% CIs from
`evals.compare`, output words, repeated 3-grams, length compliance (evals' length_ok: the summarize task's
contract of 1-2 sentences and 8-60 words), and the default gate's verdict (evals/gates/default.yaml on the
test rows, through training.gatecheck: every rule but "no loss against the previous version", which has
no previous version here and is skipped as `assay eval` skips it). The references' own compliance is
printed per set: a set whose references break the contract (paper: three sentences) cannot pass it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from planted import cache_dir  # noqa: E402  ($ASSAY_CACHE, where every benchmark keeps what it downloads)

from benchmarks.record import Row, options, record  # noqa: E402

CONFIG = REPO / "training" / "configs" / "sft-smollm2.yaml"
GATE = "evals/gates/default.yaml"
SAMPLE = REPO / "datasets" / "sample"
ACLSUM = "aclsum==0.1.2"
ASPECTS = {
    "challenge": "In one sentence, state the problem that the following paper addresses.",
    "approach": "In one sentence, state the approach that the following paper proposes.",
    "outcome": "In one sentence, state the main outcome of the following paper.",
}
SETS = ("paper", "aspect", "sample")
SIZES = {"paper": (50, 100), "aspect": (50, 100, 300), "sample": (15,)}
VALIDATION_ROWS = 40  # rows the in-run evaluation generates on (the best checkpoint is chosen on them)


# ---------------------------------------------------------------- data

def aclsum_wheel() -> Path:
    """The aclsum wheel, downloaded once with pip into $ASSAY_CACHE (later runs are offline)."""
    from assay.fetch import pip_download

    folder = cache_dir() / "aclsum-0.1.2"
    found = sorted(folder.glob("aclsum-0.1.2-*.whl"))
    if found:
        return found[0]
    return pip_download(ACLSUM, folder, env="ASSAY_ACLSUM_WHEEL", error=RuntimeError)


def _detok(sentences: list[str]) -> str:
    """ACLSum's abstracts are tokenized ("results ( MRR ) , we"); put the spacing back."""
    text = " ".join(sentences)
    text = re.sub(r" ([,.;:!?%)\]}])", r"\1", text)
    text = re.sub(r"([(\[{]) ", r"\1", text)
    return re.sub(r" (n't|'s|'re|'ve|'ll|'d)\b", r"\1", text)


def aclsum_papers() -> tuple[dict[str, list[dict]], str]:
    """{split: [{id, abstract, summaries}]} and where they came from."""
    wheel = aclsum_wheel()
    papers = {}
    with zipfile.ZipFile(wheel) as zf:
        licence = next((ln.split(":", 1)[1].strip() for ln in zf.read("aclsum-0.1.2.dist-info/METADATA")
                        .decode().splitlines() if ln.startswith("License:")), "not stated")
        for split in ("train", "val", "test"):
            rows = [json.loads(ln) for ln in zf.read(f"aclsum/dataset/{split}.jsonl").decode().splitlines() if ln]
            papers[split] = [{"id": r["id"], "abstract": _detok(r["sentences"]["abstract"]),
                              "summaries": r["summary"]} for r in rows]
    where = (f"ACLSum: PyPI {ACLSUM} ({wheel.name}), aclsum/dataset/{{train,val,test}}.jsonl, licence {licence}; "
             "expert-written challenge/approach/outcome summaries of ACL Anthology papers")
    return papers, where


def paper_rows(papers: list[dict]) -> list[dict]:
    return [{"note_id": p["id"], "task": "summarize", "text": p["abstract"], "input": p["abstract"],
             "output": " ".join(p["summaries"][a] for a in ASPECTS)} for p in papers]


def aspect_rows(papers: list[dict]) -> list[dict]:
    return [{"note_id": f"{p['id']}:{a}", "task": "summarize", "text": p["abstract"], "input": p["abstract"],
             "instruction": instruction, "output": p["summaries"][a]}
            for p in papers for a, instruction in ASPECTS.items()]


def sample_rows() -> tuple[list[dict], list[dict]]:
    """The sample export's human summaries: notes.json's `summary` fields (train), gold.jsonl (test)."""
    notes = json.loads((SAMPLE / "notes.json").read_text(encoding="utf-8"))
    by_id = {n["id"]: n for n in notes}
    gold = [json.loads(ln) for ln in (SAMPLE / "gold.jsonl").read_text(encoding="utf-8").splitlines() if ln]
    gold_ids = {g["note_id"] for g in gold}
    train = [{"note_id": n["id"], "task": "summarize", "text": n["content"], "input": n["content"],
              "output": n["summary"]} for n in notes if n.get("summary") and n["id"] not in gold_ids]
    test = [{"note_id": g["note_id"], "task": "summarize", "text": by_id[g["note_id"]]["content"],
             "input": by_id[g["note_id"]]["content"], "output": g["summary"]} for g in gold]
    return train, test


def load_sets() -> tuple[dict[str, dict[str, list[dict]]], list[str]]:
    """{set: {"pool", "validation", "test"}} rows; the training rows of size N are pool[:N]."""
    papers, where = aclsum_papers()
    rng = random.Random(0)
    train_papers = papers["train"][:]
    rng.shuffle(train_papers)
    aspect_pool = aspect_rows(train_papers)
    rng.shuffle(aspect_pool)
    sample_train, sample_test = sample_rows()
    sets = {
        "paper": {"pool": paper_rows(train_papers), "validation": paper_rows(papers["val"])[:VALIDATION_ROWS],
                  "test": paper_rows(papers["test"])},
        "aspect": {"pool": aspect_pool, "validation": aspect_rows(papers["val"])[:VALIDATION_ROWS],
                   "test": aspect_rows(papers["test"])},
        # the sample has no rows to spare: its validation rows are its training rows (stated in the table)
        "sample": {"pool": sample_train, "validation": sample_train, "test": sample_test},
    }
    provenance = [where, f"sample export: {SAMPLE.relative_to(REPO)}/notes.json `summary` fields "
                         f"({len(sample_train)} to train), gold.jsonl ({len(sample_test)} to test); written for assay"]
    return sets, provenance


# ---------------------------------------------------------------- models answer the test rows

def messages(row: dict) -> list[dict]:
    """The prompt as training renders it (training.data: the instruction, a blank line, the note)."""
    from assay.training.data import TASK_INSTRUCTIONS

    instruction = row.get("instruction") or TASK_INSTRUCTIONS[row["task"]]
    return [{"role": "user", "content": f"{instruction}\n\n{row['input']}"}]


def answer(model, tokenizer, rows: list[dict], max_new_tokens: int) -> list[str]:
    from assay.evals.generate import generate
    from assay.training.data import render_prompt

    prompts = [render_prompt(tokenizer, messages(r)) for r in rows]
    return [g.text for g in generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=8)]


def child_train(spec: dict) -> dict:
    """In its own process: train one student with the recipe, answer the test rows, report peak RSS."""
    import polars as pl
    import torch

    from assay import training
    from assay.project import Project
    from assay.records import notes_frame
    from assay.store import DatasetStore
    from assay.training.export.recipe import load_source

    torch.set_num_threads(spec["threads"])
    root = Path(spec["root"])
    frame = pl.concat([
        notes_frame(spec["train"]).with_columns(pl.lit("train").alias("split")),
        notes_frame(spec["validation"]).with_columns(pl.lit("validation").alias("split"))])
    DatasetStore(root / "datasets").write(spec["name"], frame, step="bench", config={})
    overrides = [f"data.dataset={spec['name']}", f"output.name={spec['name']}", "data.min_train_examples=1",
                 *spec["overrides"]]
    started = time.time()
    version = training.run(CONFIG, overrides, project=Project(root))
    train_s = time.time() - started
    peak_train = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cfg = training.load(CONFIG, overrides, project=Project(root))
    source, _ = load_source(version.path, keep_unmerged=False)
    started = time.time()
    preds = answer(source.model.eval(), source.tokenizer, spec["test"], cfg.eval.max_new_tokens)
    return {"predictions": preds, "metrics": version.metrics, "train_s": round(train_s, 1),
            "answer_s": round(time.time() - started, 1), "peak_train_mb": round(peak_train),
            "ref": version.ref, "max_new_tokens": cfg.eval.max_new_tokens}


def child_base(spec: dict) -> dict:
    import torch

    from assay.models import load_causal_lm

    torch.set_num_threads(spec["threads"])
    model, tokenizer = load_causal_lm("smollm2-135m-instruct", dtype=torch.float32)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return {"predictions": answer(model.eval(), tokenizer, spec["test"], spec["max_new_tokens"])}


def in_child(kind: str, spec: dict) -> dict:
    env = {**os.environ, "ASSAY_CACHE": str(cache_dir()), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(spec, fh)
    out = Path(fh.name + ".out")
    proc = subprocess.run([sys.executable, __file__, "--child", kind, fh.name, str(out)], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0 or not out.exists():
        sys.exit(f"{kind} {spec.get('name', '')} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(out.read_text(encoding="utf-8"))


def base_predictions(set_name: str, test: list[dict], max_new_tokens: int, threads: int) -> list[str]:
    """The base model's answers, cached by the prompts and settings (they never change between runs)."""
    key = hashlib.sha256(json.dumps([[messages(r) for r in test], max_new_tokens], sort_keys=True).encode()
                         ).hexdigest()[:16]
    path = cache_dir() / "bench-quality" / f"base-{set_name}-{key}.json"
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    preds = in_child("base", {"test": test, "max_new_tokens": max_new_tokens, "threads": threads})["predictions"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(preds), encoding="utf-8")
    return preds


# ---------------------------------------------------------------- scores

def summarize(preds: list[str], test: list[dict], base: list[str], lead: list[str]) -> dict:
    from assay.evals.compare import paired_bootstrap
    from assay.evals.metrics import Item, get_metric, repetition, words
    from assay.training import gatecheck

    def items(ps):
        return [Item(p, r["output"]) for p, r in zip(ps, test)]

    mine, base_items, lead_items = items(preds), items(base), items(lead)
    found = {m: get_metric(m).score(mine) * 100 for m in ("rouge1", "rouge2", "rougeL")}
    for key, other in (("base", base_items), ("lead", lead_items)):
        if other is mine:
            continue
        d = paired_bootstrap(get_metric("rougeL"), mine, other, baseline_key=key)
        found[f"vs_{key}"] = (d.delta * 100, d.ci_low * 100, d.ci_high * 100)
    found["words"] = statistics.median(words(p) for p in preds)
    found["repetition"] = 100 * statistics.mean(repetition(p) for p in preds)
    found["length_ok"] = 100 * get_metric("length_ok").score(mine)
    checks = gatecheck.load(GATE).check(preds, base, [r["output"] for r in test])
    failed = [f"{c.rule} ({c.actual})" for c in checks if not c.passed]
    found["gate"] = "NO-SHIP: " + "; ".join(failed) if failed else "SHIP"
    return found


def fmt_ci(value) -> str:
    if value is None:
        return ""
    d, lo, hi = value
    return f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--sizes", help="comma-separated training sizes (default: each set's own)")
    parser.add_argument("-o", "--override", action="append", default=[], help="a recipe override key=value")
    parser.add_argument("--test-limit", type=int, help="score only the first N test rows (quick looks)")
    # one thread: on the shared 2-core machine (load 10) a 512-token forward took 3.3 s with 1 thread, 13.3 s with 2
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--save", help="write every prediction and score to this JSON file")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, spec_path, out = args.child
        spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
        result = child_train(spec) if kind == "train" else child_base(spec)
        Path(out).write_text(json.dumps(result), encoding="utf-8")
        return

    from assay.curation.synth.teachers import lead
    from assay.evals.metrics import summary_length_problem, words

    sets, provenance = load_sets()
    print("data:")
    for line in provenance:
        print(f"  {line}")
    print(f"recipe: {CONFIG.relative_to(REPO)}" + (f" + {' '.join(args.override)}" if args.override else
                                                   " (shipped defaults)"))
    work = Path(tempfile.mkdtemp(prefix="bench-quality-"))
    results, saved = [], {}
    for set_name in args.sets.split(","):
        data = sets[set_name]
        test = data["test"][:args.test_limit] if args.test_limit else data["test"]
        max_new = None
        sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else SIZES[set_name]
        ref_words = statistics.median(words(r["output"]) for r in test)
        ref_ok = 100 * statistics.mean(summary_length_problem(r["output"]) is None for r in test)
        print(f"\n{set_name}: {len(test)} test rows (reference median {ref_words:.0f} words, {ref_ok:.0f}% of the "
              f"asked length), {len(data['validation'])} validation rows, training sizes {sizes}")
        lead_preds = [lead(r["input"]) for r in test]
        base_preds = None
        for size in sizes:
            train_rows = data["pool"][:size]
            if len(train_rows) < size:
                print(f"  {size}: only {len(train_rows)} training rows exist; skipped")
                continue
            name = f"bq-{set_name}-{size}"
            spec = {"name": name, "root": str(work / name), "train": train_rows, "validation": data["validation"],
                    "test": test, "overrides": args.override, "threads": args.threads}
            t0 = time.time()
            out = in_child("train", spec)
            if base_preds is None or max_new != out["max_new_tokens"]:
                max_new = out["max_new_tokens"]
                base_preds = base_predictions(set_name, test, max_new, args.threads)
                base_row = {"set": set_name, "size": 0, "model": "base zero-shot",
                            **summarize(base_preds, test, base_preds, lead_preds)}
                lead_row = {"set": set_name, "size": 0, "model": "lead sentences",
                            **summarize(lead_preds, test, base_preds, lead_preds)}
                del base_row["vs_base"], lead_row["vs_lead"]
                results += [base_row, lead_row]
                saved[f"{set_name}/base"], saved[f"{set_name}/lead"] = base_preds, lead_preds
            row = {"set": set_name, "size": size, "model": f"student ({size} train rows)",
                   **summarize(out["predictions"], test, base_preds, lead_preds),
                   "steps": out["metrics"].get("steps"), "best_step": out["metrics"].get("best_step"),
                   "train_s": out["train_s"], "peak_mb": out["peak_train_mb"], "wall_s": round(time.time() - t0)}
            results.append(row)
            saved[f"{set_name}/{size}"] = {"predictions": out["predictions"], "metrics": out["metrics"]}
            print(f"  {size:4d} rows: ROUGE-L {row['rougeL']:.2f} (base {base_row['rougeL']:.2f}), vs base "
                  f"{fmt_ci(row['vs_base'])}, vs lead {fmt_ci(row['vs_lead'])}; {row['words']:.0f} words, "
                  f"length ok {row['length_ok']:.1f}% (base {base_row['length_ok']:.1f}%), "
                  f"rep {row['repetition']:.1f}%, default gate {row['gate']}; "
                  f"{row['steps']} steps (best {row['best_step']}), "
                  f"train {row['train_s']:.0f} s, peak {row['peak_mb']} MB; in-run {json.dumps(out['metrics'])}",
                  flush=True)
    print_table(results)
    everything = args.sets == ",".join(SETS)  # a run of some sets keeps its own record beside the full one
    record("quality" if everything else f"quality-{args.sets.replace(',', '-')}", recorded(results),
           options(parser, args))
    if args.save:
        Path(args.save).write_text(json.dumps({"results": results, "predictions": saved,
                                               "overrides": args.override, "provenance": provenance}), encoding="utf-8")


def recorded(results: list[dict]) -> list[Row]:
    """Each student's held-out ROUGE-L, its paired difference to the base model (95% CI) and to the lead rule;
    its length compliance and repetition; the default gate's verdict."""
    base = {r["set"]: r for r in results if r["model"] == "base zero-shot"}
    rows = []
    for r in results:
        if not r["size"]:
            continue
        who = f"{r['set']}: student, {r['size']} training rows"
        rows += [Row(f"{who}: ROUGE-L", f"{r['rougeL']:.2f}",
                     baseline=f"base zero-shot {base[r['set']]['rougeL']:.2f} (vs lead: {fmt_ci(r['vs_lead'])})",
                     ratio=fmt_ci(r["vs_base"]), target="better than the base (CI above 0)", met=r["vs_base"][1] > 0),
                 Row(f"{who}: length compliance (1-2 sentences, 8-60 words)", f"{r['length_ok']:.1f}%",
                     baseline=f"base zero-shot {base[r['set']]['length_ok']:.1f}%", target=">= 80% (default gate)",
                     met=r["length_ok"] >= 80),
                 Row(f"{who}: repeated 3-grams", f"{r['repetition']:.1f}%",
                     baseline=f"base zero-shot {base[r['set']]['repetition']:.1f}%"),
                 Row(f"{who}: default gate (evals/gates/default.yaml)", r["gate"], target="SHIP",
                     met=r["gate"] == "SHIP")]
    return rows


def print_table(results: list[dict]) -> None:
    print("\n| set | model | ROUGE-1 | ROUGE-2 | ROUGE-L | ROUGE-L vs base (95% CI) | vs lead (95% CI) "
          "| median words | length ok | repeated 3-grams | default gate | steps | train s | peak RSS MB |")
    print("| --- | --- | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['set']} | {r['model']} | {r['rouge1']:.2f} | {r['rouge2']:.2f} | {r['rougeL']:.2f} | "
              f"{fmt_ci(r.get('vs_base'))} | {fmt_ci(r.get('vs_lead'))} | {r['words']:.0f} | {r['length_ok']:.1f}% | "
              f"{r['repetition']:.1f}% | {r['gate'] if r['size'] else ''} | {r.get('steps', '')} | "
              f"{r.get('train_s', '')} | {r.get('peak_mb', '')} |")
    print("\nlearning curve (ROUGE-L, student minus base, 95% CI):")
    for r in results:
        if r["size"]:
            d, lo, hi = r["vs_base"]
            verdict = "better" if lo > 0 else "worse" if hi < 0 else "not distinguishable"
            print(f"  {r['set']:7s} {r['size']:4d} rows  {d:+6.2f} [{lo:+.2f}, {hi:+.2f}]  {verdict}")


if __name__ == "__main__":
    main()
