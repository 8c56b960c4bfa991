"""Typed config of `assay export`: what parity is measured on, and the tolerances each format must meet.

Every field has a default, so `assay export MODEL@VERSION --format int8` needs no file; a YAML
(first line: `# assay export MODEL@VERSION --format FORMAT --config THIS.yaml`) or key=value
overrides such as `int8.tolerance.max_perplexity_change=0.5` change it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from assay.config import Strict

# Short instructions rendered through the model's chat template: the figures then describe the
# model as it is used (a chat turn), not raw text continuation.
DEFAULT_PROMPTS = [
    "What is the capital of France?",
    "Summarize in one sentence: the team met on Monday, agreed to ship the release on Friday, "
    "and asked Dana to write the notes.",
    "List three things to pack for a day of hiking.",
    "Write a short reminder to call the dentist tomorrow morning.",
]


class Tolerance(Strict):
    """Limits an export must meet to be called good; None records the figure without judging it."""

    max_abs_logit_diff: float | None = Field(None, gt=0)
    # teacher-forced: the share of positions of the reference's greedy continuations where the
    # export's argmax is the reference's token (1.0 = identical greedy decoding)
    min_greedy_agreement: float | None = Field(None, ge=0, le=1)
    # relative: 0.05 allows the export's perplexity on the plain-text sample to be 5% above the reference's
    max_perplexity_change: float | None = Field(None, ge=0)


class ParitySection(Strict):
    prompts: list[str] = Field(default_factory=lambda: list(DEFAULT_PROMPTS), min_length=1)
    chat_template: bool = True  # render prompts as a user turn with the tokenizer's chat template
    max_new_tokens: int = Field(16, ge=1, le=512)
    text_file: Path | None = None  # plain UTF-8 text for perplexity; None: the sample shipped in parity.py
    max_text_tokens: int = Field(512, ge=16)


class FormatSection(Strict):
    """A format's options and its tolerance; tolerance fields not given keep the format's defaults."""

    TOLERANCE: ClassVar[dict[str, Any]] = {}
    tolerance: Tolerance

    @classmethod
    def default_tolerance(cls, data: dict[str, Any]) -> dict[str, Any]:
        return cls.TOLERANCE

    @model_validator(mode="before")
    @classmethod
    def _fill_tolerance(cls, data: Any) -> Any:
        # `int8.tolerance.max_perplexity_change=0.5` must change that one limit, not drop the others
        if isinstance(data, dict):
            given = data.get("tolerance")
            if given is None or isinstance(given, dict):
                data = {**data, "tolerance": {**cls.default_tolerance(data), **(given or {})}}
        return data


class MergedSection(FormatSection):
    # reference: the base with the adapter applied unmerged (PEFT); an fp32 merge changes little beyond rounding
    TOLERANCE = {"max_abs_logit_diff": 1e-3, "min_greedy_agreement": 0.95, "max_perplexity_change": 0.001}


class Int8Section(FormatSection):
    # Measured on SmolLM2-135M, plain-text perplexity vs fp32: every Linear in int8 +212% (+54% smoothed);
    # down_proj and lm_head kept fp32 +20% unsmoothed, +2..4% smoothed (alpha 0.7); greedy agreement >= 0.97.
    TOLERANCE = {"max_abs_logit_diff": None, "min_greedy_agreement": 0.85, "max_perplexity_change": 0.1}
    skip_modules: list[str] = Field(default_factory=lambda: ["mlp.down_proj", "lm_head"])  # Linear name suffixes
    # SmoothQuant migration strength (0..1) applied before quantizing; null turns smoothing off
    smooth: float | None = Field(0.7, ge=0, le=1)


class OnnxSection(FormatSection):
    TOLERANCE = {"max_abs_logit_diff": 1e-3, "min_greedy_agreement": 0.95, "max_perplexity_change": 0.001}
    opset: int = Field(18, ge=18)  # the dynamo exporter's floor


class GgufSection(FormatSection):
    # per outtype; measured on SmolLM2-135M: f16 max logit diff 0.04, ppl +0.001%; q8_0 1.3 and +0.12%
    TOLERANCES: ClassVar[dict[str, dict[str, Any]]] = {
        "f32": {"max_abs_logit_diff": 2e-3, "min_greedy_agreement": 0.95, "max_perplexity_change": 0.001},
        "f16": {"max_abs_logit_diff": 0.25, "min_greedy_agreement": 0.95, "max_perplexity_change": 0.005},
        "bf16": {"max_abs_logit_diff": 1.0, "min_greedy_agreement": 0.9, "max_perplexity_change": 0.02},
        "q8_0": {"max_abs_logit_diff": 3.0, "min_greedy_agreement": 0.9, "max_perplexity_change": 0.02},
    }
    outtype: Literal["f32", "f16", "bf16", "q8_0"] = "f16"
    # the PyPI source distribution that carries llama.cpp's convert_hf_to_gguf.py and gguf-py
    converter: str = Field("llama-cpp-python==0.3.36", pattern=r"^llama-cpp-python==[0-9][0-9A-Za-z.]*$")

    @classmethod
    def default_tolerance(cls, data: dict[str, Any]) -> dict[str, Any]:
        return cls.TOLERANCES.get(data.get("outtype", "f16"), cls.TOLERANCES["f16"])


class ExportConfig(Strict):
    """First line of an export YAML says: assay export MODEL@VERSION --format FORMAT --config THIS.yaml"""

    parity: ParitySection = Field(default_factory=ParitySection)
    merged: MergedSection = Field(default_factory=MergedSection)
    int8: Int8Section = Field(default_factory=Int8Section)
    onnx: OnnxSection = Field(default_factory=OnnxSection)
    gguf: GgufSection = Field(default_factory=GgufSection)
