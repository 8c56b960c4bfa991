"""Training throughput and peak memory: the SFT recipe against a plain transformers.Trainer + PEFT script.

    python benchmarks/bench_train.py                     # 64 sample-note examples, max 512 tokens, 8 rows a step, 3 epochs
    python benchmarks/bench_train.py --examples 32 --batch-size 4 --epochs 2 --threads 1   # a quicker look

Same model (SmolLM2-135M-Instruct), same examples (rendered with its chat template), same LoRA (the
shipped config's: rank 16, alpha 32, all-linear, its dropout), same rows per optimizer step, learning
rate and epochs. `recipe-default` is the shipped config as a user runs it: batch_size auto within its
memory_gb (4 GB), accumulating to the same rows per step. The baseline is the usual script: tokenize
with truncation, Trainer with DataCollatorForLanguageModeling (dynamic padding, labels on every token),
batch `--batch-size`. Each variant runs in its own process so its peak memory is its own (ru_maxrss on
CPU, max_memory_allocated on CUDA). Throughput counts real (non-padding) tokens per second of training
time, model loading excluded.
"""  # noqa: E501  (printed verbatim by --help: the usage line keeps its text)

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SAMPLE = REPO / "datasets" / "sample"
CONFIG = REPO / "training" / "configs" / "sft-smollm2.yaml"

from benchmarks.record import Row, options, record  # noqa: E402


def sample_rows(n: int) -> list[dict]:
    """Summaries of the gold notes, then titles of the other notes: short and medium examples, as in real use."""
    notes = json.loads((SAMPLE / "notes.json").read_text(encoding="utf-8"))
    by_id = {note["id"]: note for note in notes}
    gold = [json.loads(line) for line in (SAMPLE / "gold.jsonl").read_text(encoding="utf-8").splitlines() if line]
    rows = [{"note_id": g["note_id"], "task": "summarize", "input": by_id[g["note_id"]]["content"],
             "output": g["summary"]} for g in gold]
    gold_ids = {g["note_id"] for g in gold}
    rows += [{"note_id": note["id"], "task": "title", "input": note["content"], "output": note["title"]}
             for note in notes if note["id"] not in gold_ids and note.get("title")]
    return rows[:n]


# recipe variants: the overrides each adds to the shared ones ({b}: --batch-size)
RECIPE_VARIANTS = {
    "recipe": ["data.packing=false", "train.batch_size={b}"],
    "recipe-packed": ["data.packing=true", "train.batch_size={b}"],
    # the shipped config: batch_size auto within its memory_gb (4), accumulating to {b} rows a step
    "recipe-default": ["train.rows_per_step={b}"],
    "recipe-packed-gc": ["data.packing=true", "train.batch_size={b}", "model.gradient_checkpointing=true"],
    "recipe-qlora": ["data.packing=true", "train.batch_size={b}", "model.quantize=4bit"],  # CUDA + bitsandbytes
}


def run_recipe(args, variant: str) -> dict:
    import polars as pl

    from assay import training
    from assay.project import Project
    from assay.records import notes_frame
    from assay.store import DatasetStore

    root = Path(tempfile.mkdtemp(prefix="bench-train-"))
    df = notes_frame(sample_rows(args.examples)).with_columns(pl.lit("train").alias("split"))
    DatasetStore(root / "datasets").write("bench", df, step="bench", config={})
    overrides = [f"data.max_seq_length={args.max_seq_length}",
                 *(o.format(b=args.batch_size) for o in RECIPE_VARIANTS[variant]),
                 "data.dataset=bench", "data.min_train_examples=1", f"train.epochs={args.epochs}",
                 "train.min_steps=null",  # the same epochs as the baseline, not the small-data minimum
                 "train.save_steps=100000", "eval.every_steps=100000", "train.logging_steps=1", "output.name=bench"]
    version = training.run(CONFIG, overrides, project=Project(root))
    m = version.metrics
    return {"tokens": m["train_tokens_seen"], "seconds": m["train_runtime_s"], "steps": m["steps"],
            "examples": df.height, "micro_batch": f"{m['micro_batch']}x{m['gradient_accumulation']}"}


def run_plain(args) -> dict:
    """The baseline: what a plain Trainer + PEFT fine-tuning script does."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    from assay.models import load_causal_lm
    from assay.training.data import TASK_INSTRUCTIONS

    model, tokenizer = load_causal_lm("smollm2-135m-instruct", dtype=torch.float32)
    rows = sample_rows(args.examples)
    texts = [tokenizer.apply_chat_template(
        [{"role": "user", "content": f"{TASK_INSTRUCTIONS[r['task']]}\n\n{r['input']}"},
         {"role": "assistant", "content": r["output"]}], tokenize=False) for r in rows]
    data = Dataset.from_dict({"text": texts}).map(
        lambda b: tokenizer(b["text"], truncation=True, max_length=args.max_seq_length), batched=True,
        remove_columns=["text"])
    import yaml

    lora = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))["lora"]  # the adapter of the recipe's shipped config
    model = get_peft_model(model, LoraConfig(r=lora["rank"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                                             target_modules=lora["target_modules"], task_type="CAUSAL_LM"))
    trainer = Trainer(
        model=model, train_dataset=data,
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
        args=TrainingArguments(output_dir=tempfile.mkdtemp(prefix="bench-plain-"),
                               num_train_epochs=args.epochs,
                               per_device_train_batch_size=args.batch_size, learning_rate=2e-4,
                               lr_scheduler_type="cosine", warmup_steps=0.05, logging_steps=1,
                               save_strategy="no", report_to="none", disable_tqdm=True, seed=42,
                               use_cpu=not torch.cuda.is_available(),
                               bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported()))
    result = trainer.train()
    return {"tokens": args.epochs * sum(len(ids) for ids in data["input_ids"]),
            "seconds": result.metrics["train_runtime"],
            "steps": trainer.state.global_step, "examples": len(rows)}


def child(variant: str, args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    result = run_plain(args) if variant == "plain" else run_recipe(args, variant)
    if torch.cuda.is_available():
        result["peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
        result["memory"] = "cuda max allocated"
    else:
        result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result["memory"] = "process peak RSS"
    print("RESULT " + json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--max-seq-length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    # both sides get the same threads; on a shared, loaded machine 1 thread beat 2 by 4x (benchmarks/README.md)
    parser.add_argument("--threads", type=int, default=max(1, min(os.cpu_count() or 1, 8)))
    parser.add_argument("--variants", default="plain,recipe-default,recipe-packed",
                        help="comma-separated, from: plain, " + ", ".join(RECIPE_VARIANTS))
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        return child(args.variant, args)

    env = {**os.environ, "ASSAY_CACHE": os.environ.get("ASSAY_CACHE") or str(REPO / ".cache" / "assay"),
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    print(f"{args.examples} examples, max {args.max_seq_length} tokens, {args.batch_size} rows a step, {args.epochs} "
          f"epochs; {platform.machine()}, {args.threads} threads, load {os.getloadavg()[0]:.1f}")
    results = {}
    for variant in args.variants.split(","):
        cmd = [sys.executable, __file__, "--variant", variant, "--examples", str(args.examples),
               "--max-seq-length", str(args.max_seq_length), "--batch-size", str(args.batch_size),
               "--epochs", str(args.epochs), "--threads", str(args.threads)]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            sys.exit(f"{variant} failed:\n{out.stderr[-3000:]}")
        results[variant] = r = json.loads(line[7:])
        r["tokens"], r["tok_s"] = int(r["tokens"]), r["tokens"] / r["seconds"]
        print(f"  {variant:16s} {r['tokens']:7d} tokens  {r['steps']:3d} steps  {r['seconds']:7.1f} s  "
              f"{r['tok_s']:8.1f} tok/s  peak {r['peak_mb']:7.0f} MB ({r['memory']})  "
              f"micro-batch {r.get('micro_batch', args.batch_size)}", flush=True)
    if "plain" not in results:
        record("train", [Row(f"{v}: tokens/s", f"{r['tok_s']:.1f}") for v, r in results.items()], options(parser, args))
        return
    base = results["plain"]
    targets = {"recipe": " (target >= 1.0x)", "recipe-packed": " (target >= 1.5x)",
               "recipe-default": " (target >= 1.3x, peak <= 4096 MB)"}
    rows = []
    for variant, r in results.items():
        if variant != "plain":
            print(f"{variant} / plain: {r['tok_s'] / base['tok_s']:.2f}x tok/s{targets.get(variant, '')}, "
                  f"{r['peak_mb'] / base['peak_mb']:.2f}x peak memory")
            speed = r["tok_s"] / base["tok_s"]
            want = {"recipe": 1.0, "recipe-packed": 1.5, "recipe-default": 1.3}.get(variant)
            met = None if want is None else speed >= want and (variant != "recipe-default" or r["peak_mb"] <= 4096)
            rows.append(Row(f"{variant}: tokens/s, peak {r['peak_mb']:.0f} MB", f"{r['tok_s']:.1f}",
                            baseline=f"plain Trainer + PEFT {base['tok_s']:.1f} tok/s, peak {base['peak_mb']:.0f} MB",
                            ratio=f"{speed:.2f}x tok/s, {r['peak_mb'] / base['peak_mb']:.2f}x memory",
                            target=targets.get(variant, "").strip(" ()").removeprefix("target "), met=met))
    record("train", rows, options(parser, args))


if __name__ == "__main__":
    main()
