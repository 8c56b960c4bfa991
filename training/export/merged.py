"""`merged`: the adapter folded into the base weights, a plain fp32 Hugging Face folder (safetensors).

Loads anywhere transformers does (`AutoModelForCausalLM.from_pretrained(folder)`), with no PEFT.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from assay.training.export.parity import TorchRunner


def write(source, out: Path, section) -> dict[str, Any]:
    source.save_hf(out)
    return {"dtype": "float32", "runtime": "transformers (AutoModelForCausalLM.from_pretrained)"}


def load(path: Path) -> TorchRunner:
    return TorchRunner(load_model(path))


def load_model(path: Path):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, local_files_only=True).eval()
