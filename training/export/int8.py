"""`int8`: dynamic int8 for CPU. Linear weights are int8 (symmetric, one scale per output channel);
activations are quantized per tensor at run time by torch's fbgemm/x86 int8 kernels.

Per-tensor activation quantization is what hurts: a few activation channels are far larger than
the rest. Before quantizing, SmoothQuant (Xiao et al., 2023) moves that range into the weights:
for each RMSNorm -> Linear group, norm weight /= s and Linear input columns *= s per channel, with
s = max|X|^a / max|W|^(1-a) from a short calibration pass (an exact rewrite in fp32). Measured on
SmolLM2-135M, down_proj and lm_head fp32: plain-text perplexity +21.7% without it, +1.8% with a = 0.7.

On disk the weights are plain tensors in safetensors (`<module>.weight_int8` + `<module>.weight_scale`,
everything else fp32) with `int8.json` naming the quantized modules, so the file outlives torch's
quantization API: `load_model` rebuilds the model from config.json and swaps in the int8 modules.
Layers named in `skip_modules` stay fp32 (SmolLM2 breaks when every Linear is int8).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from assay.errors import InputError
from assay.training.export.parity import TorchRunner

RECIPE = "int8.json"
WEIGHTS = "model.safetensors"

# Calibration input for smoothing (activation maxima only), kept apart from parity's perplexity text
# so the figures are not measured on what the export was fitted to.
CALIBRATION = [
    "Dear team, here is a summary of this week's planning session. We reviewed the open tickets, moved the "
    "database migration to next sprint, and agreed that Priya will own the onboarding guide. Questions about "
    "the budget should go to Marco by Thursday.",
    "Recipe: mix two cups of flour with a pinch of salt, add warm water slowly, knead for ten minutes, then "
    "let the dough rest under a towel for an hour before shaping it.",
]
CALIBRATION_CHAT = ["Summarize my notes from the meeting.", "What should I buy for dinner tonight?"]


def write(source, out: Path, section) -> dict[str, Any]:
    import torch
    from safetensors.torch import save_file

    model = source.model
    skip = tuple(section.skip_modules)

    def is_skipped(name: str) -> bool:
        return any(name == s or name.endswith("." + s) for s in skip)

    smoothed = 0
    if section.smooth is not None:
        import copy

        model = copy.deepcopy(model)  # smoothing rewrites weights; the caller's model stays as it was
        smoothed = smooth(model, _calibration(source.tokenizer), section.smooth, is_skipped)
    quantized, kept = [], []
    tensors: dict[str, torch.Tensor] = {}
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        if is_skipped(name):
            kept.append(name)
            continue
        weight = module.weight.detach().float()
        scale = (weight.abs().amax(dim=1) / 127).clamp(min=1e-12)
        tensors[f"{name}.weight_int8"] = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8)
        tensors[f"{name}.weight_scale"] = scale.contiguous()
        quantized.append(name)
    if not quantized:
        raise InputError("leaves no Linear layer to quantize", field="int8.skip_modules",
                         value=section.skip_modules)
    replaced = {f"{n}.weight" for n in quantized}
    seen: dict[int, str] = {}
    tied = []
    for key, value in model.state_dict().items():
        if key in replaced:
            continue
        ptr = value.data_ptr()
        if ptr in seen:  # tied weights (embeddings and lm_head): config.json re-ties them on load
            tied.append(key)
            continue
        seen[ptr] = key
        tensors[key] = value.detach().float().contiguous()
    save_file(tensors, str(out / WEIGHTS), metadata={"format": "pt", "assay": "int8-dynamic"})
    model.config.save_pretrained(out)
    if model.generation_config is not None:
        model.generation_config.save_pretrained(out)
    source.tokenizer.save_pretrained(out)
    recipe = {
        "scheme": "dynamic-int8",
        "weights": "int8, symmetric, one scale per output channel",
        "activations": "int8 per tensor, computed at run time",
        "kernel": "torch.ao.nn.quantized.dynamic.Linear (fbgemm/x86)",
        "quantized": quantized,
        "kept_fp32": kept,
        "tied": tied,
        "skip_modules": list(section.skip_modules),
        "smooth_alpha": section.smooth,
        "smoothed_groups": smoothed,
    }
    (out / RECIPE).write_text(json.dumps(recipe, indent=2), encoding="utf-8")
    variant = f"fp32: {', '.join(section.skip_modules)}" if section.skip_modules else "every Linear"
    if section.smooth is not None:
        variant += f"; smooth {section.smooth:g}"
    return {"variant": variant, "quantized_linear": len(quantized), "kept_fp32": kept,
            "skip_modules": list(section.skip_modules), "smooth_alpha": section.smooth, "smoothed_groups": smoothed,
            "runtime": "torch dynamic int8 (training.export.int8.load_model)"}


def _calibration(tokenizer) -> list[list[int]]:
    texts = list(CALIBRATION)
    if getattr(tokenizer, "chat_template", None):
        texts += [tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                                add_generation_prompt=True) for q in CALIBRATION_CHAT]
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


def _groups(model, is_skipped) -> list[tuple[Any, list[str], bool]]:
    """(scale owner, Linear names fed by it, owner is a norm) for Llama-style decoder layers; [] otherwise."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    found = []
    for i, layer in enumerate(layers or []):
        attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
        pre = f"model.layers.{i}."
        if hasattr(layer, "input_layernorm") and all(hasattr(attn, f"{p}_proj") for p in "qkv"):
            found.append((layer.input_layernorm, [pre + f"self_attn.{p}_proj" for p in "qkv"], True))
        if hasattr(layer, "post_attention_layernorm") and all(hasattr(mlp, p) for p in ("gate_proj", "up_proj")):
            found.append((layer.post_attention_layernorm, [pre + "mlp.gate_proj", pre + "mlp.up_proj"], True))
        if hasattr(mlp, "up_proj") and hasattr(mlp, "down_proj"):
            # down_proj's input is act(gate) * up, linear in up's output rows
            found.append((mlp.up_proj, [pre + "mlp.down_proj"], False))
    # only groups whose every consumer is quantized: scaling an fp32 layer buys nothing
    return [(owner, names, is_norm) for owner, names, is_norm in found if not any(is_skipped(n) for n in names)]


def smooth(model, calibration: list[list[int]], alpha: float, is_skipped) -> int:
    """SmoothQuant in place; returns how many groups were rescaled."""
    import torch

    groups = _groups(model, is_skipped)
    wanted = {n for _, names, _ in groups for n in names[:1]}
    amax: dict[str, torch.Tensor] = {}

    def hook(name):
        def record(module, inputs, output):
            seen = inputs[0].detach().abs().reshape(-1, inputs[0].shape[-1]).amax(0)
            amax[name] = torch.maximum(amax[name], seen) if name in amax else seen
        return record

    handles = [model.get_submodule(n).register_forward_hook(hook(n)) for n in wanted]
    try:
        with torch.no_grad():
            for ids in calibration:
                model(input_ids=torch.tensor([ids]), use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    with torch.no_grad():
        for owner, names, is_norm in groups:
            linears = [model.get_submodule(n) for n in names]
            weight_max = torch.cat([m.weight.abs() for m in linears]).amax(0).clamp(min=1e-5)
            scale = (amax[names[0]].clamp(min=1e-5).pow(alpha) / weight_max.pow(1 - alpha)).clamp(min=1e-5)
            if is_norm:
                owner.weight.div_(scale)
            else:
                owner.weight.div_(scale[:, None])
            for linear in linears:
                linear.weight.mul_(scale)
    return len(groups)


def load(path: Path) -> TorchRunner:
    return TorchRunner(load_model(path))


def load_model(path: Path):
    """The int8 model: architecture from config.json, int8 Linear modules from the recipe, the rest fp32."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    path = Path(path)
    recipe = json.loads((path / RECIPE).read_text(encoding="utf-8"))
    tensors = load_file(str(path / WEIGHTS))
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    int8 = {name: (tensors.pop(f"{name}.weight_int8"), tensors.pop(f"{name}.weight_scale"),
                   tensors.pop(f"{name}.bias", None)) for name in recipe["quantized"]}
    # the fp32 rest first: the int8 modules below replace the Linear weights this leaves missing
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    untied = [k for k in missing if k not in recipe["tied"] and k.removesuffix(".weight") not in int8]
    if untied or unexpected:
        raise ValueError(f"{path / WEIGHTS} does not match its config: missing {untied}, unexpected {unexpected}")
    with warnings.catch_warnings():
        # torch marks its eager quantization API deprecated; its int8 kernels are what this format runs on
        warnings.simplefilter("ignore")
        from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

        for name, (weight, scale, bias) in int8.items():
            qweight = torch._make_per_channel_quantized_tensor(
                weight, scale.double(), torch.zeros(weight.shape[0], dtype=torch.long), 0)
            module = DynamicInt8Linear(weight.shape[1], weight.shape[0], bias_=bias is not None, dtype=torch.qint8)
            module.set_weight_bias(qweight, bias)
            model.set_submodule(name, module)
    return model.eval()
