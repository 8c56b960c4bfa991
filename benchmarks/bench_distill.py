"""The compression path on SmolLM2, end to end: fine-tune a teacher, drop half its layers, distil.

    python benchmarks/bench_distill.py                 # 64 sample-note examples, teacher 3 epochs, student 5
    python benchmarks/bench_distill.py --student-epochs 2 --teacher-epochs 1   # a quicker look

1. teacher: LoRA SFT of SmolLM2-135M-Instruct on the examples (training/configs/sft-smollm2.yaml),
   saved merged (`output.save_merged=true`);
2. student: every 2nd of the teacher's 30 layers (training/configs/distill-smollm2.yaml,
   `compress.keep_every=2`), every weight trained on alpha * CE + (1 - alpha) * T^2 * KL against the
   fine-tuned teacher's logits;
3. printed: layers, parameters, validation loss and ROUGE-L (greedy, held-out rows) of the teacher, of
   the student before distillation (the layer-dropped copy as is) and after, and generation speed.

The examples are the benchmark's: the sample's 30 human summaries and note titles; 8 are held out.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("ASSAY_CACHE", str(REPO / ".cache" / "assay"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.bench_train import sample_rows  # noqa: E402
from benchmarks.record import Row, options, record  # noqa: E402

CONFIGS = REPO / "training" / "configs"


def measure(folder: Path, prompts: list[str]) -> tuple[int, float]:
    """Parameters and greedy generation speed of a saved model (64 new tokens per prompt, one at a time)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    made, started = 0, time.perf_counter()
    with torch.no_grad():
        for prompt in prompts:
            ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                                return_tensors="pt", return_dict=True)
            out = model.generate(**ids, max_new_tokens=64, min_new_tokens=64, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
            made += out.shape[1] - ids["input_ids"].shape[1]
    return sum(p.numel() for p in model.parameters()), made / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--teacher-epochs", type=float, default=3)
    parser.add_argument("--student-epochs", type=float, default=5)
    args = parser.parse_args()

    import polars as pl

    from assay import training
    from assay.project import Project
    from assay.records import notes_frame
    from assay.store import DatasetStore

    root = Path(tempfile.mkdtemp(prefix="bench-distill-"))
    rows = sample_rows(args.examples)
    split = ["validation" if i % 8 == 7 else "train" for i in range(len(rows))]
    df = notes_frame(rows).with_columns(pl.Series("split", split))
    DatasetStore(root / "datasets").write("bench", df, step="bench", config={})
    project = Project(root)
    shared = ["data.dataset=bench", "data.max_seq_length=512", "data.min_train_examples=8", "train.batch_size=8",
              "train.save_steps=1000", "eval.every_steps=1000", "eval.generate_examples=8", "eval.max_new_tokens=48",
              "eval.early_stopping_patience=null"]
    print(f"{df.height} examples ({split.count('train')} train, {split.count('validation')} validation); "
          f"load {os.getloadavg()[0]:.1f}", flush=True)

    started = time.perf_counter()
    teacher = training.run(CONFIGS / "sft-smollm2.yaml", shared + [
        f"train.epochs={args.teacher_epochs}", "output.save_merged=true", "output.name=teacher"], project=project)
    teacher_s = time.perf_counter() - started
    started = time.perf_counter()
    student = training.run(CONFIGS / "distill-smollm2.yaml", shared + [
        f"teacher.model={teacher.path / 'merged'}", "compress.keep_every=2", f"train.epochs={args.student_epochs}",
        "output.name=student"], project=project)
    student_s = time.perf_counter() - started

    from transformers import AutoConfig

    prompts = [r["input"][:600] for r in rows[:4]]
    t_folder, s_folder = teacher.path / "merged", student.path / "model"
    (t_params, t_speed), (s_params, s_speed) = measure(t_folder, prompts), measure(s_folder, prompts)
    tm, sm = teacher.metrics, student.metrics
    print("\n| model | layers | parameters | val loss | val ROUGE-L | gen tok/s | train time |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(f"| SmolLM2-135M-Instruct, zero-shot | 30 | {t_params / 1e6:.1f}M | {tm['base_loss']:.3f} | "
          f"{tm['base_rouge_l']:.3f} | | |")
    print(f"| teacher: + LoRA SFT, merged | 30 | {t_params / 1e6:.1f}M | {tm['eval_loss']:.3f} | "
          f"{tm['eval_rouge_l']:.3f} | {t_speed:.1f} | {teacher_s:.0f} s |")
    layers = AutoConfig.from_pretrained(s_folder).num_hidden_layers
    print(f"| student: every 2nd layer, before distillation | {layers} | {s_params / 1e6:.1f}M | "
          f"{sm['base_loss']:.3f} | {sm['base_rouge_l']:.3f} | | |")
    print(f"| student: after distillation | {layers} | {s_params / 1e6:.1f}M | {sm['eval_loss']:.3f} | "
          f"{sm['eval_rouge_l']:.3f} | {s_speed:.1f} | {student_s:.0f} s |")
    closed = (sm["base_loss"] - sm["eval_loss"]) / max(sm["base_loss"] - tm["eval_loss"], 1e-9)
    print(f"\nstudent / teacher: {s_speed / t_speed:.2f}x generation speed, {s_params / t_params:.2f}x parameters; "
          f"distillation closed {closed:.0%} of the validation-loss gap to the teacher")
    record("distill", [
        Row(f"student ({layers} layers): generation tok/s", f"{s_speed:.1f}", baseline=f"teacher {t_speed:.1f} tok/s",
            ratio=f"{s_speed / t_speed:.2f}x"),
        Row("student: parameters", f"{s_params / 1e6:.1f}M", baseline=f"teacher {t_params / 1e6:.1f}M",
            ratio=f"{s_params / t_params:.2f}x"),
        Row("student: validation loss", f"{sm['eval_loss']:.3f} (before distillation {sm['base_loss']:.3f})",
            baseline=f"teacher {tm['eval_loss']:.3f}", ratio=f"{closed:.0%} of the gap closed"),
        Row("student: validation ROUGE-L", f"{sm['eval_rouge_l']:.3f}",
            baseline=f"teacher {tm['eval_rouge_l']:.3f}, zero-shot base {tm['base_rouge_l']:.3f}"),
    ], options(parser, args))


if __name__ == "__main__":
    main()
