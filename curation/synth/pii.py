"""Reversible PII redaction for notes that leave the machine.

Before a note goes to a remote teacher, secrets (API keys, tokens, passwords, PINs), URLs that carry
secrets, emails, IBANs, card numbers, account numbers, passport numbers, phone numbers, street addresses
and UK postcodes, and person names become placeholders like `[EMAIL_1]`; the replies are restored from the
note's vault. The recognizers live in secrets.py, recognizers.py and names.py; what they do not find is
listed in NOT_COVERED, which the manifest carries.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Callable, Iterable

from assay.curation.synth import recognizers as rec
from assay.curation.synth.names import persons
from assay.curation.synth.recognizers import DEFAULT_PHONE_REGIONS, iban_ok, luhn_ok  # noqa: F401  (re-exported)
from assay.curation.synth.secrets import find_high_entropy, find_secrets

if TYPE_CHECKING:
    import polars as pl

    from assay.curation.synth.contract import Teacher

TYPES = ("SECRET", "URL", "EMAIL", "IBAN", "CARD", "SSN", "ACCOUNT", "PASSPORT", "PHONE", "ADDRESS", "PERSON")
NOT_COVERED = ("no NER model is installed, so these person names are not found: a surname alone in running text "
               "('Okafor said'), a name in lower case except right after call/ask/met and the like, a first name "
               "that is also a common word (Grace, Will, May) with neither a surname nor such a word before it, a "
               "name changed by grammar (Polish 'z Katarzyną'), a family name first at the start of a sentence; "
               "firms and places after such words may be redacted as names. Also not found: addresses without a "
               "house number or a street word; a lower-case address inside a sentence unless the clause ends "
               "there, a small word follows it or 'at'/'address' comes before it ('rent for 19 fairfield road "
               "rises'); lower-case postcodes that read as ordinals or sizes ('b33 8th', 'm1 8gb'); passport "
               "numbers without a word for passport a few words before or after them; national ID numbers other "
               "than US SSNs; dates of birth; a password of one plain word after 'is' ('the password is "
               "sunshine').")


@dataclass(frozen=True)
class Entity:
    type: str
    start: int
    end: int
    value: str


Recognizer = Callable[[str], Iterable[tuple[int, int]]]


def recognizers(regions: tuple[str, ...] = DEFAULT_PHONE_REGIONS) -> list[tuple[str, Recognizer]]:
    """(type, recognizer) in priority order: an earlier one wins an overlap (a card number is not also a phone);
    the entropy check comes last, so an IBAN or a URL keeps its own type."""
    return [("URL", rec.urls), ("SECRET", find_secrets), ("EMAIL", rec.emails), ("IBAN", rec.ibans),
            ("CARD", rec.cards), ("SSN", rec.ssns), ("ACCOUNT", rec.accounts), ("PASSPORT", rec.passports),
            ("PHONE", partial(rec.phones, regions=regions)), ("ADDRESS", rec.addresses), ("PERSON", persons),
            ("SECRET", find_high_entropy)]


_PLACEHOLDER = re.compile(r"\[(" + "|".join(TYPES) + r")[_ ]?(\d+)\]", re.I)


def find_pii(text: str, regions: tuple[str, ...] = DEFAULT_PHONE_REGIONS) -> list[Entity]:
    """Non-overlapping PII spans, in text order."""
    found: list[tuple[int, int, int, str]] = []
    for rank, (kind, recognizer) in enumerate(recognizers(regions)):
        for start, end in recognizer(text):
            if end > start:
                found.append((start, end, rank, kind))
    starts: list[int] = []  # chosen spans, sorted and disjoint: an overlap test is one bisect
    ends: list[int] = []
    chosen: list[Entity] = []
    for start, end, _, kind in sorted(found, key=lambda f: (f[2], f[0], -(f[1] - f[0]))):
        i = bisect.bisect_left(starts, end)  # chosen spans that start before this one ends
        if i and ends[i - 1] > start:
            continue
        starts.insert(i, start)
        ends.insert(i, end)
        chosen.append(Entity(kind, start, end, text[start:end]))
    return sorted(chosen, key=lambda e: e.start)


@dataclass
class Vault:
    """One note's placeholders: the same value always gets the same placeholder, so replies can be restored."""

    regions: tuple[str, ...] = DEFAULT_PHONE_REGIONS  # where national phone numbers are read from
    values: dict[str, str] = field(default_factory=dict)  # placeholder -> original
    _by_value: dict[tuple[str, str], str] = field(default_factory=dict)
    _next: Counter = field(default_factory=Counter)

    def placeholder(self, kind: str, value: str) -> str:
        key = (kind, value)
        if key not in self._by_value:
            self._next[kind] += 1
            name = f"[{kind}_{self._next[kind]}]"
            self._by_value[key] = name
            self.values[name] = value
        return self._by_value[key]

    def redact(self, text: str | None) -> str | None:
        if not text:
            return text
        parts, pos = [], 0
        for ent in find_pii(text, self.regions):
            parts += [text[pos:ent.start], self.placeholder(ent.type, ent.value)]
            pos = ent.end
        parts.append(text[pos:])
        return "".join(parts)

    def restore(self, text: str | None) -> tuple[str | None, int]:
        """The text with every known placeholder put back, and how many placeholders were unknown."""
        if not text:
            return text, 0
        unknown = 0

        def put_back(m: re.Match) -> str:
            nonlocal unknown
            name = f"[{m.group(1).upper()}_{m.group(2)}]"
            if name in self.values:
                return self.values[name]
            unknown += 1
            return m.group()

        return _PLACEHOLDER.sub(put_back, text), unknown

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(name[1:].rsplit("_", 1)[0] for name in self.values).items()))

    def __len__(self) -> int:
        return len(self.values)


# -- the privacy guard: what leaves the machine, redacted unless allowed

def guard_for(cfg) -> "Guard":
    """The one place a Guard is built: from a synth config's privacy settings (allow_cloud_pii,
    phone_regions). Synthesis passes its own config; an eval, the one recorded by the synthesis that labeled
    the candidate's data (evals.run.recorded_synth), so a note leaves the machine the same way in both."""
    return Guard(cfg.allow_cloud_pii, tuple(cfg.phone_regions))


class Guard:
    """Per run: redacts what goes to remote teachers (one vault per note), restores what comes back,
    and remembers which notes left the machine, to which teacher, redacted or not."""

    def __init__(self, allow_cloud_pii: bool, phone_regions: tuple[str, ...] = DEFAULT_PHONE_REGIONS):
        self.allow = allow_cloud_pii
        self.regions = tuple(phone_regions)
        self.vaults: dict[str, Vault] = {}
        self.sent: dict[str, dict[str, bool]] = {}  # note_id -> {teacher spec: redacted}

    def outgoing(self, teacher: Teacher, note_id: str, text: str | None) -> str | None:
        """The text as this teacher may see it; remote teachers get placeholders unless PII is allowed out."""
        if not teacher.is_remote:
            return text
        self.sent.setdefault(note_id, {})[teacher.spec] = not self.allow
        if self.allow:
            return text
        return self.vaults.setdefault(note_id, Vault(self.regions)).redact(text)

    def incoming(self, teacher: Teacher, note_id: str, text: str | None) -> tuple[str | None, int]:
        if teacher.is_remote and not self.allow and note_id in self.vaults:
            return self.vaults[note_id].restore(text)
        return text, 0

    def columns(self, note_ids: list[str]) -> dict[str, pl.Series]:
        import polars as pl

        sent = [sorted(self.sent.get(n, {})) for n in note_ids]
        redacted = [None if n not in self.sent else all(self.sent[n].values()) for n in note_ids]
        found = [len(self.vaults[n]) if n in self.vaults else None for n in note_ids]
        return {"sent_to": pl.Series("sent_to", sent, dtype=pl.List(pl.String)),
                "redacted": pl.Series("redacted", redacted, dtype=pl.Boolean),
                "pii_found": pl.Series("pii_found", found, dtype=pl.Int64)}

    def summary(self) -> dict:
        by_teacher: dict[str, dict[str, int]] = {}
        for per_teacher in self.sent.values():
            for spec, redacted in per_teacher.items():
                line = by_teacher.setdefault(spec, {"rows": 0, "redacted": 0, "unredacted": 0})
                line["rows"] += 1
                line["redacted" if redacted else "unredacted"] += 1
        items: Counter = Counter()
        for note_id, vault in self.vaults.items():
            if note_id in self.sent:
                items.update(vault.counts())
        return {"allow_cloud_pii": self.allow, "rows_left_machine": len(self.sent),
                "rows_redacted": sum(all(v.values()) for v in self.sent.values()),
                "rows_unredacted": sum(not all(v.values()) for v in self.sent.values()),
                "pii_items_redacted": dict(sorted(items.items())), "by_teacher": by_teacher,
                "phone_regions": list(self.regions), "not_covered": NOT_COVERED}


SURROGATES = {
    "SECRET": "[secret]", "EMAIL": "alex@example.com", "PHONE": "+1 555 0100", "URL": "https://example.com/link",
    "CARD": "4111 1111 1111 1111", "IBAN": "XX00 0000 0000 0000", "ACCOUNT": "00000000", "SSN": "000-00-0000",
    "ADDRESS": "1 Example Street", "PERSON": "Alex", "PASSPORT": "X0000000",
}


def fill_surrogates(text: str) -> str:
    """Replace placeholders with neutral stand-ins: for synthetic notes written from redacted examples,
    where restoring would copy one real note's PII into another."""
    return _PLACEHOLDER.sub(lambda m: SURROGATES[m.group(1).upper()], text)
