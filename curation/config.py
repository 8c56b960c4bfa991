"""The typed config of `assay curate`: one section per step."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from assay.config import Strict


class IngestConfig(Strict):
    format: Literal["auto", "json", "jsonl", "csv", "markdown", "enex"] = "auto"
    # our field -> the export's column/key, e.g. {"text": "body", "note_id": "uuid"}
    columns: dict[str, str] = Field(default_factory=dict)
    skip_invalid: bool = False  # quarantine bad records with a reason instead of stopping
    max_note_bytes: int = Field(5_000_000, gt=0)  # larger notes are refused (or quarantined as too_large)


class CleanConfig(Strict):
    unicode_form: Literal["NFC", "NFKC"] = "NFKC"
    strip_html: bool = True  # only applied to notes that came as HTML (ENEX) or carry HTML tags
    min_chars: int = Field(12, ge=0)
    max_chars: int = Field(20_000, gt=0)
    min_words: int = Field(3, ge=0)
    max_symbol_ratio: float = Field(0.5, gt=0, le=1)  # share of characters that are neither letters, digits nor spaces
    max_repeated_line_ratio: float = Field(0.5, gt=0, le=1)
    min_unique_word_ratio: float = Field(0.2, ge=0, le=1)  # catches "aaaa aaaa aaaa" and pasted loops


class NearDedupeConfig(Strict):
    # Lightly edited copies of real news notes (a few words changed, a line appended, a typo) keep
    # a median 0.86 of their word 3-grams (5% of them under 0.63), while distinct notes stay under
    # 0.1 (0.38 for short posts sharing a long signature): 3-grams at 0.5 sit between the two.
    # Word 5-grams at 0.8 find only about half of those copies. See benchmarks/README.md.
    enabled: bool = True
    shingle: Literal["word", "char"] = "word"
    ngram: int = Field(3, ge=1, le=20)
    num_perm: int = Field(128, ge=16, le=1024)
    threshold: float = Field(0.5, gt=0, lt=1)  # estimated Jaccard similarity of the shingle sets
    seed: int = 42


class SemanticDedupeConfig(Strict):
    enabled: bool = True
    model: str = "all-minilm-l6-v2"
    # Dropped: only near-certain duplicates, cosine of the two notes' embeddings >= threshold and at
    # least min_word_overlap Jaccard similarity of their sets of words. Distinct documents on one
    # subject embed close: reports of one event up to cosine 0.89 (news), two pieces of one story up
    # to 0.90, with word overlap up to 0.46; a note rewritten by its author sits at 0.82-0.90 too. So
    # below 0.95 a pair is kept: precision >= 0.99 on every corpus of benchmarks/README.md.
    threshold: float = Field(0.95, gt=0, le=1)
    min_word_overlap: float = Field(0.5, ge=0, le=1)
    # Kept but listed as possible duplicates (the dataset's possible_duplicates table, for review):
    # pairs at cosine >= review_threshold and word overlap >= review_min_word_overlap that were not
    # dropped. Null lists none. The sample's planted paraphrases (cosine 0.82-0.90, overlap 0.23-0.38)
    # are found here. Cross-set decontamination drops what this band would list.
    review_threshold: float | None = Field(0.82, gt=0, le=1)
    review_min_word_overlap: float = Field(0.2, ge=0, le=1)
    # shorter notes are left to the exact and near passes: "dentist Friday 9am" and "dentist Monday
    # 9am" embed at 0.96, since one changed word is the whole difference
    min_words: int = Field(8, ge=1)
    batch_size: int = Field(64, ge=1)

    @model_validator(mode="after")
    def _review_below_drop(self) -> "SemanticDedupeConfig":
        if self.review_threshold is not None and self.review_threshold > self.threshold:
            raise ValueError(f"review_threshold ({self.review_threshold:g}) must not be above threshold "
                             f"({self.threshold:g}): the review band lies below what is dropped")
        return self


class DedupeConfig(Strict):
    exact: bool = True
    near: NearDedupeConfig = Field(default_factory=NearDedupeConfig)
    semantic: SemanticDedupeConfig = Field(default_factory=SemanticDedupeConfig)


class BalanceConfig(Strict):
    enabled: bool = True
    # columns of the coverage table: category, tag, folder, task, length, month
    dimensions: list[Literal["category", "tag", "folder", "task", "length", "month"]] = Field(
        default_factory=lambda: ["category"])
    max_per_cell: int | None = Field(None, ge=1)  # downsample cells above this
    target_per_cell: int | None = Field(None, ge=1)  # cells below this are gaps; default: the median cell size
    targets: dict[str, int] = Field(default_factory=dict)  # per-cell overrides, key like "category=recipes"
    length_buckets: list[int] = Field(default_factory=lambda: [200, 1000])  # character boundaries
    seed: int = 0


class SplitConfig(Strict):
    train: float = Field(0.8, ge=0, le=1)
    validation: float = Field(0.1, ge=0, le=1)
    test: float = Field(0.1, ge=0, le=1)
    report_by: str | None = "category"  # per-value split counts go into the manifest
    salt: str = "assay"

    @model_validator(mode="after")
    def _sums_to_one(self) -> "SplitConfig":
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + validation + test must be 1.0, got {total:g}")
        return self


class CurateConfig(Strict):
    """First line of a curate YAML says: assay curate EXPORT --config THIS.yaml"""

    ingest: IngestConfig = Field(default_factory=IngestConfig)
    clean: CleanConfig = Field(default_factory=CleanConfig)
    dedupe: DedupeConfig = Field(default_factory=DedupeConfig)
    balance: BalanceConfig = Field(default_factory=BalanceConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
