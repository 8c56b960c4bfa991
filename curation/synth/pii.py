"""Reversible PII redaction for notes that leave the machine.

Before a note goes to a remote teacher, emails, phone numbers, URLs that carry secrets,
card numbers (Luhn-checked), IBANs (mod-97-checked), account numbers, street addresses
and honorific-led names ("Dr. Patel") become placeholders like `[EMAIL_1]`; the replies are
restored from the note's vault. Recognizers are regexes with checksums where one exists:
no NER model is installed, so names without an honorific are not found.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable

if TYPE_CHECKING:
    import polars as pl

    from curation.synth.teachers import Teacher

TYPES = ("URL", "EMAIL", "IBAN", "CARD", "SSN", "ACCOUNT", "PHONE", "ADDRESS", "PERSON")


@dataclass(frozen=True)
class Entity:
    type: str
    start: int
    end: int
    value: str


# -- recognizers: each yields (start, end) spans of one type; checks run on the matched text

# a query key that names a secret, alone or inside a longer name (reset_token, X-Amz-Signature, api-key)
_SECRET_KEYS = (r"[\w.-]*(?:token|key|secret|password|passwd|pwd|pass|auth|sig|signature|session|sid|code|otp|"
                r"jwt|bearer|credential|hash|invite)[\w.-]*")
_URL = re.compile(r"\b(?:[a-z][a-z0-9+.\-]*://|www\.)[^\s<>\"'`)\]]+", re.I)
_URL_SECRET_QUERY = re.compile(rf"[?&#;]{_SECRET_KEYS}=[^&#\s]+", re.I)
_URL_USERINFO = re.compile(r"^[a-z]+://[^/@\s]+:[^/@\s]+@", re.I)
_URL_TOKEN_SEGMENT = re.compile(r"[/=]([A-Za-z0-9_\-]{24,})(?=[/?&#.]|$)")

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,63})@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,24}\b")

_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b")
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")
_ACCOUNT = re.compile(
    r"\b(?:account|acct|a/c|acc|konto(?:nummer)?|routing|aba|sort[ -]?code|bsb|iban)\b"
    r"(?:\s*(?:no\.?|number|num|nr\.?|#|:))*\s*[:#]?\s*"
    r"(?P<num>\d[\d -]{3,20}\d)", re.I)

_PHONE = re.compile(
    r"(?<![\w+/.-])(?:"
    r"(?:\+|00)\d{1,3}[\s.\-]?(?:\(0?\d{1,4}\)[\s.\-]?)?\d{1,4}(?:[\s.\-]?\d{1,4}){1,4}"  # international
    r"|\(\d{2,5}\)[\s.\-]?\d{3,4}[\s.\-]?\d{3,4}"  # (555) 123-4567, (020) 7946 0958
    r"|(?:1[\s.\-])?\d{3}[\s.\-]\d{3}[\s.\-]\d{4}"  # 555-123-4567, 555.123.4567, 1-800-555-0199
    r"|0\d{1,4}[\s.\-]?\d{3,4}[\s.\-]?\d{3,4}"  # national trunk prefix: 020 7946 0958, 07700 900123
    r"|0\d(?:[\s.]\d{2}){4}"  # 06 12 34 56 78
    r"|\d{10}"  # 5551234567 (only with a phone word nearby, see _phone_ok)
    r")(?:\s*(?:x|ext\.?|extension)\s*\d{1,5})?(?![\w/-])", re.I)
_PHONE_WORDS = re.compile(r"\b(?:call|phone|tel|telephone|mobile|mob|cell|fax|whatsapp|sms|text|ring|number|"
                          r"ph|m|t|landline|handy|tél|telefon|contact)\b\.?:?\s*$", re.I)
_DATE_LIKE = re.compile(r"^(?:\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4})$")

_STREET_SUFFIX = (r"(?:Street|St|Avenue|Ave|Av|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|"
                  r"Terrace|Terr|Way|Parkway|Pkwy|Highway|Hwy|Circle|Cir|Square|Sq|Close|Crescent|Cres|Row|"
                  r"Mews|Gardens|Gdns|Grove|Hill|Walk|Trail|Trl|Alley|Plaza|Loop)")
_UNIT = r"(?:,?\s*(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Fl|#)\.?\s*#?[\w-]+)?"
_US_TAIL = r"(?:,\s*[A-Z][a-z]+(?:\s[A-Z][a-z]+){0,2})?(?:,?\s+[A-Z]{2}\s+\d{5}(?:-\d{4})?)?"
_UK_POSTCODE = r"[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}"
_ADDRESS = re.compile(
    r"(?:"
    # 742 Evergreen Terrace, 1600 Pennsylvania Ave NW, Apt 4, Springfield, IL 62704
    rf"\b\d{{1,6}}[A-Za-z]?\s+(?:[NSEW]\.?\s+)?(?:[A-Z0-9][\w'’.-]*\s+){{0,4}}{_STREET_SUFFIX}\b\.?"
    rf"(?:\s+(?:NW|NE|SW|SE|N|S|E|W)\b)?{_UNIT}{_US_TAIL}(?:,?\s+{_UK_POSTCODE}\b)?"
    # Hauptstraße 12, 10115 Berlin; Keizersgracht 123; Storgatan 5
    r"|\b[A-ZÄÖÜÅ][\wäöüßåø-]*(?:straße|strasse|str\.|weg|gasse|platz|allee|ring|damm|ufer|straat|laan|gracht|"
    r"plein|kade|vej|gade|gatan|vägen|veien)\s+\d{1,4}[a-z]?(?:,\s*\d{4,5}\s?[A-Z]{0,2}\s+[A-ZÄÖÜ][\wäöüß-]+)?"
    # 12 rue de la Paix, 75002 Paris
    r"|\b\d{1,4}(?:\s?(?:bis|ter))?,?\s+(?:rue|avenue|av\.|boulevard|bd|place|allée|chemin|impasse|quai|route)"
    r"\s+(?:[\w'’-]+\s?){1,5}?(?:,\s*\d{5}\s+[A-Z][\w-]+|(?=[,.;\n]|$))"
    # Calle Mayor 5, Via Roma 12
    r"|\b(?:Calle|Avenida|Av\.|Plaza|Paseo|Carrer|Rua|Via|Viale|Piazza|Corso)\s+"
    r"(?:(?:[A-Z][\wà-ú'’]*|de|del|della|dei|di|da|do|dos|das|la|le|los|las)\s+){1,5}\d{1,4}"
    r"(?:,\s*\d{5}\s+[A-Z][\wà-ú-]+)?"
    r"|\bP\.?\s?O\.?\s+Box\s+\d{1,6}"
    rf"|\b{_UK_POSTCODE}\b"
    r")")
_NAME = r"[A-Z][a-z]*(?:['’-][A-Z][a-z]+)*"
_PERSON = re.compile(rf"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Dame)\.?\s+{_NAME}(?:\s+{_NAME})?(?!\w)")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(text: str) -> bool:
    s = text.replace(" ", "").upper()
    if not 15 <= len(s) <= 34:
        return False
    rearranged = s[4:] + s[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def _urls(text: str) -> Iterable[tuple[int, int]]:
    for m in _URL.finditer(text):
        url = m.group().rstrip(".,;:!?")
        if _URL_SECRET_QUERY.search(url) or _URL_USERINFO.search(url) or _has_token_segment(url):
            yield m.start(), m.start() + len(url)


def _has_token_segment(url: str) -> bool:
    for seg in _URL_TOKEN_SEGMENT.findall(url):
        # a long run that mixes digits and letters reads as a key, not a slug like "how-to-make-sourdough-bread"
        if sum(c.isdigit() for c in seg) >= 4 and sum(c.isalpha() for c in seg) >= 4 and "-" not in seg[:12]:
            return True
    return False


def _emails(text: str) -> Iterable[tuple[int, int]]:
    for m in _EMAIL.finditer(text):
        yield m.span()


def _ibans(text: str) -> Iterable[tuple[int, int]]:
    for m in _IBAN.finditer(text):
        value = m.group()
        # the regex may swallow a following word in capitals; shrink until the checksum holds
        while value and not iban_ok(value):
            value = value[:-1].rstrip()
            if len(value.replace(" ", "")) < 15:
                value = ""
        if value:
            yield m.start(), m.start() + len(value)


def _cards(text: str) -> Iterable[tuple[int, int]]:
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and luhn_ok(digits) and len(set(digits)) > 1:
            yield m.span()


def _ssns(text: str) -> Iterable[tuple[int, int]]:
    for m in _SSN.finditer(text):
        yield m.span()


def _accounts(text: str) -> Iterable[tuple[int, int]]:
    for m in _ACCOUNT.finditer(text):
        num = m.group("num").rstrip(" -")
        if sum(c.isdigit() for c in num) >= 6:
            yield m.start("num"), m.start("num") + len(num)


def _phones(text: str) -> Iterable[tuple[int, int]]:
    for m in _PHONE.finditer(text):
        value = m.group()
        digits = re.sub(r"\D", "", value.split("x")[0].split("ext")[0])
        if not 8 <= len(digits) <= 15 or _DATE_LIKE.match(value.strip()):
            continue
        international = value.startswith(("+", "00"))
        separated = bool(re.search(r"[\s.()\-]", value))
        if not (international or separated) and not _PHONE_WORDS.search(text[max(0, m.start() - 24):m.start()]):
            continue  # a bare run of digits is an order number unless a phone word precedes it
        yield m.span()


def _addresses(text: str) -> Iterable[tuple[int, int]]:
    for m in _ADDRESS.finditer(text):
        value = m.group().rstrip(" ,.")
        yield m.start(), m.start() + len(value)


def _persons(text: str) -> Iterable[tuple[int, int]]:
    for m in _PERSON.finditer(text):
        yield m.span()


# order is priority: an earlier recognizer wins an overlap (a card number is not also a phone)
RECOGNIZERS: dict[str, Callable[[str], Iterable[tuple[int, int]]]] = {
    "URL": _urls, "EMAIL": _emails, "IBAN": _ibans, "CARD": _cards, "SSN": _ssns, "ACCOUNT": _accounts,
    "PHONE": _phones, "ADDRESS": _addresses, "PERSON": _persons,
}
_PLACEHOLDER = re.compile(r"\[(" + "|".join(TYPES) + r")[_ ]?(\d+)\]", re.I)


def find_pii(text: str) -> list[Entity]:
    """Non-overlapping PII spans, in text order."""
    found: list[tuple[int, int, int, str]] = []
    for rank, (kind, recognizer) in enumerate(RECOGNIZERS.items()):
        for start, end in recognizer(text):
            if end > start:
                found.append((start, end, rank, kind))
    chosen: list[Entity] = []
    taken: list[tuple[int, int]] = []
    for start, end, _, kind in sorted(found, key=lambda f: (f[2], f[0], -(f[1] - f[0]))):
        if any(start < e and s < end for s, e in taken):
            continue
        taken.append((start, end))
        chosen.append(Entity(kind, start, end, text[start:end]))
    return sorted(chosen, key=lambda e: e.start)


@dataclass
class Vault:
    """One note's placeholders: the same value always gets the same placeholder, so replies can be restored."""

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
        for ent in find_pii(text):
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

class Guard:
    """Per run: redacts what goes to remote teachers (one vault per note), restores what comes back,
    and remembers which notes left the machine, to which teacher, redacted or not."""

    def __init__(self, allow_cloud_pii: bool):
        self.allow = allow_cloud_pii
        self.vaults: dict[str, Vault] = {}
        self.sent: dict[str, dict[str, bool]] = {}  # note_id -> {teacher spec: redacted}

    def outgoing(self, teacher: Teacher, note_id: str, text: str | None) -> str | None:
        """The text as this teacher may see it; remote teachers get placeholders unless PII is allowed out."""
        if not teacher.is_remote:
            return text
        self.sent.setdefault(note_id, {})[teacher.spec] = not self.allow
        if self.allow:
            return text
        return self.vaults.setdefault(note_id, Vault()).redact(text)

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
                "names_detected": "only after an honorific (Mr, Ms, Dr, Prof, ...): no NER model is installed"}


SURROGATES = {
    "EMAIL": "alex@example.com", "PHONE": "+1 555 0100", "URL": "https://example.com/link",
    "CARD": "4111 1111 1111 1111", "IBAN": "XX00 0000 0000 0000", "ACCOUNT": "00000000", "SSN": "000-00-0000",
    "ADDRESS": "1 Example Street", "PERSON": "Alex",
}


def fill_surrogates(text: str) -> str:
    """Replace placeholders with neutral stand-ins: for synthetic notes written from redacted examples,
    where restoring would copy one real note's PII into another."""
    return _PLACEHOLDER.sub(lambda m: SURROGATES[m.group(1).upper()], text)
