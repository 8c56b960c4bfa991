"""`onnx`: one fp32 graph with a KV cache, for onnxruntime (weights in `model.onnx.data` beside it).

The graph (batch size 1, no padding):
  inputs   input_ids [1, seq] int64, past_keys / past_values [layers, 1, kv_heads, past, head_dim] float32
  outputs  logits [1, seq, vocab], present_keys / present_values [layers, 1, kv_heads, past + seq, head_dim]
A first call passes an empty past (past = 0) and the whole prompt; each later call passes one token
and the presents of the call before. Exported with `torch.onnx.export(dynamo=True)` (onnxscript):
optimum's exporter pins transformers < 4.58 and cannot live with ours.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

GRAPH = "model.onnx"
INPUTS = ["input_ids", "past_keys", "past_values"]
OUTPUTS = ["logits", "present_keys", "present_values"]


def _wrapper(model):
    import torch
    from transformers import DynamicCache

    layers = model.config.get_text_config().num_hidden_layers

    class WithCache(torch.nn.Module):
        # the cache travels as two stacked tensors, so the graph has three inputs whatever the depth
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, past_keys, past_values):
            cache = DynamicCache(config=self.model.config)
            for i in range(layers):
                cache.update(past_keys[i], past_values[i], i)
            out = self.model(input_ids=input_ids, cache=cache, use_cache=True)
            keys = torch.stack([cache.layers[i].keys for i in range(layers)])
            values = torch.stack([cache.layers[i].values for i in range(layers)])
            return out.logits, keys, values

    return WithCache()


def _cache_shape(config) -> tuple[int, int, int]:
    text = config.get_text_config()
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    return text.num_hidden_layers, text.num_key_value_heads, head_dim


def _export(model, out: Path, section, layers: int, kv_heads: int, head_dim: int) -> None:
    import torch

    example_past = torch.zeros(layers, 1, kv_heads, 3, head_dim)
    seq = torch.export.Dim("seq", min=1, max=8192)
    past = torch.export.Dim("past", min=0, max=8192)
    program = torch.onnx.export(
        _wrapper(model), (torch.zeros(1, 5, dtype=torch.long), example_past, example_past.clone()),
        dynamo=True, external_data=True, opset_version=section.opset, input_names=INPUTS,
        output_names=OUTPUTS, optimize=True, verbose=False,
        dynamic_shapes={"input_ids": {1: seq}, "past_keys": {3: past}, "past_values": {3: past}})
    program.save(str(out / GRAPH), external_data=True)


def write(source, out: Path, section) -> dict[str, Any]:
    model = source.model
    layers, kv_heads, head_dim = _cache_shape(model.config)
    # the exporter prints progress on stdout and warns about torchvision ops this graph never uses
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _export(model, out, section, layers, kv_heads, head_dim)
    finally:
        quiet.setLevel(level)
    model.config.save_pretrained(out)
    if model.generation_config is not None:
        model.generation_config.save_pretrained(out)
    source.tokenizer.save_pretrained(out)
    return {"opset": section.opset, "kv_cache": True, "batch_size": 1, "inputs": INPUTS, "outputs": OUTPUTS,
            "cache_shape": f"[{layers}, 1, {kv_heads}, past, {head_dim}]",
            "runtime": "onnxruntime (training.export.onnx.OnnxRunner)"}


class OnnxRunner:
    """Greedy decoding and logits through onnxruntime, with the graph's KV cache."""

    def __init__(self, path: Path, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(Path(path) / GRAPH), options, providers=["CPUExecutionProvider"])
        shape = self.session.get_inputs()[1].shape  # [layers, 1, kv_heads, "past", head_dim]
        self.empty = np.zeros((shape[0], 1, shape[2], 0, shape[4]), dtype=np.float32)

    def _run(self, ids: list[int], keys: np.ndarray, values: np.ndarray):
        return self.session.run(OUTPUTS, {"input_ids": np.array([ids], dtype=np.int64),
                                          "past_keys": keys, "past_values": values})

    def logits(self, ids: list[int]) -> np.ndarray:
        return self._run(ids, self.empty, self.empty)[0][0]

    def generate(self, ids: list[int], max_new_tokens: int, eos: set[int]) -> list[int]:
        keys, values = self.empty, self.empty
        step, new = list(ids), []
        for _ in range(max_new_tokens):
            logits, keys, values = self._run(step, keys, values)
            token = int(logits[0, -1].argmax())
            new.append(token)
            if token in eos:
                break
            step = [token]
        return new


def load(path: Path) -> OnnxRunner:
    import torch

    # as many threads as torch uses, so the tokens/s beside the torch reference compare like with like
    return OnnxRunner(path, threads=torch.get_num_threads())

