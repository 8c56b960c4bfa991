"""Recognizers for contact and financial data: URLs that carry secrets, emails (also written out as
"tom at gmail dot com"), IBANs, card numbers, SSNs, account numbers, passport numbers, phone numbers and
street addresses (with UK postcodes).

Each yields (start, end) spans; checksums are checked where one exists (Luhn, IBAN mod 97) and phone
numbers are validated by `phonenumbers` (Google's libphonenumber metadata) for the configured regions.
Linear time on any input: every pattern starts with a look-behind that rejects starts inside a run it would
consume, repeats are possessive or bounded, and anything fuzzier is checked in Python on the matched text.
"""

from __future__ import annotations

import bisect
import re
from typing import Iterable

from assay.redact import SECRET_PARAM

# -- URLs that carry a secret: userinfo, a secret query parameter or a key-shaped path segment
_URL = re.compile(r"(?<![a-z0-9+.\-])(?:[a-z][a-z0-9+.\-]{0,15}+://|www\.)[^\s<>\"'`)\]]++", re.I)
_URL_PARAM = re.compile(r"[?&#;]([\w.\-]{1,64}+)=[^&#\s]")
_URL_USERINFO = re.compile(r"^[a-z][a-z0-9+.\-]{0,15}+://[^/@:\s]{1,256}+:[^/\s]{1,256}?@", re.I)
_URL_TOKEN_SEGMENT = re.compile(r"[/=]([A-Za-z0-9_\-]{24,}+)(?=[/?&#.]|$)")


def urls(text: str) -> Iterable[tuple[int, int]]:
    for m in _URL.finditer(text):
        url = m.group().rstrip(".,;:!?")
        secret_param = any(SECRET_PARAM.search(p) for p in _URL_PARAM.findall(url))
        if secret_param or _URL_USERINFO.search(url) or _has_token_segment(url):
            yield m.start(), m.start() + len(url)


def _has_token_segment(url: str) -> bool:
    for seg in _URL_TOKEN_SEGMENT.findall(url):
        # a long run that mixes digits and letters reads as a key, not a slug like "how-to-make-sourdough-bread"
        if sum(c.isdigit() for c in seg) >= 4 and sum(c.isalpha() for c in seg) >= 4 and "-" not in seg[:12]:
            return True
    return False


# -- emails, plain and written out
_EMAIL = re.compile(r"(?<![\w.+\-])[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}+@(?:[A-Za-z0-9\-]{1,63}+\.)+[A-Za-z]{2,24}+"
                    r"(?![\w\-])")
_AT = r"(?:\s*+[\[({<]\s*+(?:at|@)\s*+[\])}>]\s*+|\s++(?:at|ät|arroba|chez|bei)\s++|\s++@\s++)"
_DOT = (r"(?:\s*+[\[({<]\s*+(?:dot|punkt|point|punto|ponto|\.)\s*+[\])}>]\s*+|\s++(?:dot|punkt|point|punto|ponto)\s++"
        r"|\s++\.\s++|\.)")
_SPELLED_EMAIL = re.compile(rf"(?<![\w.+\-])(?P<user>[A-Za-z0-9][A-Za-z0-9._%+\-]{{0,63}}+){_AT}"
                            rf"(?P<domain>[A-Za-z0-9\-]{{1,63}}+(?:{_DOT}[A-Za-z0-9\-]{{1,63}}+){{1,4}}+)", re.I)
_SPELLED_DOT = re.compile(r"\s*+[\[({<]\s*+(?:dot|punkt|point|punto|ponto|\.)\s*+[\])}>]\s*+"
                          r"|\s*+(?:dot|punkt|point|punto|ponto)\s*+|\.", re.I)
_TLDS = frozenset("""com org net edu gov mil int io co ai app dev me info biz xyz online site tech email mail
uk de fr es it nl be ch at se no dk fi pl pt br ru jp cn in au ca us eu ie nz za mx ar cl cz sk hu ro gr tr il kr
tw hk sg my th vn id ph ua lu is ee lv lt si hr bg rs""".split())
_MAIL_HOSTS = frozenset("""gmail googlemail yahoo ymail outlook hotmail live msn icloud me mac aol gmx web t-online
posteo mailbox proton protonmail pm yandex mail orange free laposte wanadoo sfr libero virgilio tiscali
hey fastmail zoho tutanota""".split())


def emails(text: str) -> Iterable[tuple[int, int]]:
    for m in _EMAIL.finditer(text):
        yield m.span()
    for m in _SPELLED_EMAIL.finditer(text):
        if "@" in m.group():
            continue  # a plain address, found above
        labels = _SPELLED_DOT.split(m.group("domain"))
        # "meet at home dot" is not an address: the last label must be a top-level domain
        if len(labels) < 2 or labels[-1].lower() not in _TLDS or not all(labels):
            continue
        # "we met at booking.com": with a plain "at" and plain dots, the name must look like a mailbox
        plain_at = not re.search(r"[\[({<@]", text[m.end("user"):m.start("domain")])
        plain_dots = all(sep == "." for sep in _SPELLED_DOT.findall(m.group("domain")))
        if plain_at and plain_dots and not re.search(r"[\d._+\-]", m.group("user")) \
                and labels[0].lower() not in _MAIL_HOSTS:
            continue
        yield m.span()


# -- IBANs: country code, check digits, then the country's length; any case, spaces or dashes every few chars
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "BY": 28,
    "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19,
    "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}
_IBAN_START = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{2})(\d{2})")


def iban_ok(text: str) -> bool:
    s = re.sub(r"[\s\-]", "", text).upper()
    if not 15 <= len(s) <= 34 or not s.isalnum():
        return False
    rearranged = s[4:] + s[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def ibans(text: str) -> Iterable[tuple[int, int]]:
    for m in _IBAN_START.finditer(text):
        need = IBAN_LENGTHS.get(m.group(1).upper())
        if need is None:
            continue
        end, count, i = m.end(), 4, m.end()
        while count < need and i < len(text):
            if text[i].isalnum() and text[i].isascii():
                count, end = count + 1, i + 1
            elif text[i] not in " -" or i + 1 >= len(text) or not text[i + 1].isalnum():
                break  # one space or dash between groups, nothing else
            i += 1
        if count == need and not (end < len(text) and text[end].isalnum()) and iban_ok(text[m.start():end]):
            yield m.start(), end


# -- card numbers (Luhn), SSNs, account numbers after a word that names one
_CARD = re.compile(r"(?<![\d\-])(?:\d[ \-]?){12,18}\d(?![\d\-])")
_SSN = re.compile(r"(?<![\d\-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d\-])")
_ACCOUNT = re.compile(
    r"\b(?:account|acct|a/c|acc|konto(?:nummer)?|kontonr|routing|aba|sort[ \-]?code|bsb|iban|compte|cuenta|conto)\b"
    r"(?:[\s\-]*+(?:no\.?|number|num|nr\.?|#|:|n°|nº))*+\s*+[:#]?\s*+"
    r"(?P<num>\d[\d \-]{3,20}+)", re.I)


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def cards(text: str) -> Iterable[tuple[int, int]]:
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and luhn_ok(digits) and len(set(digits)) > 1:
            yield m.span()


def ssns(text: str) -> Iterable[tuple[int, int]]:
    for m in _SSN.finditer(text):
        yield m.span()


def accounts(text: str) -> Iterable[tuple[int, int]]:
    for m in _ACCOUNT.finditer(text):
        num = m.group("num").rstrip(" -")
        if sum(c.isdigit() for c in num) >= 6:
            yield m.start("num"), m.start("num") + len(num)


# -- passport numbers: a number in one of the countries' shapes a few words after (or just before) a word for
# passport; a label before the number that names another kind of number wins ("order 48213977")
_PASSPORT_WORD = re.compile(r"\b(?:passports?|passeports?|pasaportes?|passaport[oie]|paspoort|reisepass|paszport|"
                            r"pass-?nr|passnummer)\w{0,8}+", re.I)
# every shape has a digit among its first six characters: words ("passport", "expires") are not looked at
_PASSPORT_TOKEN = re.compile(r"(?<![\w\-/.+])(?=[A-Za-z]{0,5}\d)(?:[A-Za-z0-9]{6,10}+|\d{3} \d{3} \d{3})"
                             r"(?![\w\-/]|[.,]\d)")
_PASSPORT_SHAPES = (
    re.compile(r"\d{8,9}|\d{3} \d{3} \d{3}"),  # US, UK, Sweden and many more: digits only
    re.compile(r"[A-Z]{1,3}\d{6,8}", re.I),  # US C+8, India J+7, Canada 2+6, Italy/Poland/Ireland 2+7, Spain 3+6
    re.compile(r"\d{2}[A-Z]{2}\d{5}", re.I),  # France
    re.compile(r"(?=(?:[A-Z]*\d){3})(?=\d*[A-Z])[A-Z0-9]{9}"),  # Germany, Netherlands: 9 capitals and digits
)
_YYYYMMDD = re.compile(r"(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])")
_OTHER_NUMBER_LABEL = re.compile(r"(?:order|invoice|ref|reference|tracking|ticket|booking|confirmation|case|flight|"
                                 r"train|seat|room|phone|tel|fax|account|acct|card|visa|application|receipt)"
                                 r"\W{0,3}(?:no|nr|number|#)?\.?\W{0,3}$", re.I)
_SENTENCE_BREAK = re.compile(r"[;!?\n]|(?<!\bno)(?<!\bnr)(?<!\bn)\.\s", re.I)  # "Pass-Nr. T22000129" goes on
_AFTER, _BEFORE = (48, 6), (24, 3)  # characters searched, and words allowed between word and number


def _passport_shaped(text: str, m: re.Match) -> bool:
    return (any(shape.fullmatch(m.group()) for shape in _PASSPORT_SHAPES) and not _YYYYMMDD.fullmatch(m.group())
            and not _OTHER_NUMBER_LABEL.search(text, max(0, m.start() - 24), m.start()))


def _near(text: str, lo: int, hi: int, words: int) -> bool:
    """Word and number are close: few words and no end of sentence between them."""
    return len(text[lo:hi].split()) <= words and not _SENTENCE_BREAK.search(text, lo, hi)


def passports(text: str) -> Iterable[tuple[int, int]]:
    cues = [cue.span() for cue in _PASSPORT_WORD.finditer(text)]
    if not cues:
        return []
    numbers = [m.span() for m in _PASSPORT_TOKEN.finditer(text) if _passport_shaped(text, m)]
    starts = [start for start, _ in numbers]
    found: set[tuple[int, int]] = set()
    for cue_start, cue_end in cues:
        i = bisect.bisect_left(starts, cue_end)
        while i < len(numbers) and numbers[i][0] <= cue_end + _AFTER[0]:
            if numbers[i][1] <= cue_end + _AFTER[0] and _near(text, cue_end, numbers[i][0], _AFTER[1]):
                found.add(numbers[i])
            i += 1
        # "A4827163 is her passport number": the nearest one before the word
        i = bisect.bisect_left(starts, cue_start) - 1
        if i >= 0 and numbers[i][0] >= cue_start - _BEFORE[0] and numbers[i][1] <= cue_start \
                and _near(text, numbers[i][1], cue_start, _BEFORE[1]):
            found.add(numbers[i])
    return sorted(found)


# -- phone numbers: a linear scan finds number-shaped runs, libphonenumber validates them per region
DEFAULT_PHONE_REGIONS = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "CH", "AT", "AU", "IN", "BR")
_PHONE = re.compile(
    r"(?<![\w+/.\-])(?:\+|00)?(?:\(\d{1,5}\)|\d)(?:[ \t./\-]?(?:\(0?\d{1,5}\)|\d)){5,19}"
    r"(?:\s*+(?:ext\.?|x|extension|durchwahl|poste|int\.?)\s*+\d{1,5})?(?![\w/])", re.I)
_DATE_LIKE = re.compile(r"\d{4}[\-./]\d{1,2}[\-./]\d{1,2}|\d{1,2}[\-./]\d{1,2}[\-./]\d{2,4}")
# "Order 4155550132": a label before a bare number says it is not a phone number
_NOT_A_PHONE_LABEL = re.compile(r"(?:order|invoice|ref|reference|tracking|ticket|id|isbn|serial|booking|"
                                r"confirmation|case|customer|po|sku|item|bestell\w*|rechnung|commande|factura|"
                                r"pedido|time|timestamp|unix)(?:\W{1,3}(?:no|nr|number|#)\.?)?\W{0,3}$", re.I)
_PHONE_WORD = re.compile(r"(?:call|phone|tel|telephone|mobile|mob|cell|fax|whatsapp|sms|text|ring|handy|telefon|"
                         r"tél|portable|móvil|cellulare|mobiel|celular|fon|nummer|number|nr|no)\b\W{0,4}$", re.I)
MAX_VALIDATED = 500  # past this many number-shaped runs in one text, redact without asking libphonenumber


def phones(text: str, regions: tuple[str, ...] = DEFAULT_PHONE_REGIONS) -> Iterable[tuple[int, int]]:
    import phonenumbers

    for n, m in enumerate(_PHONE.finditer(text)):
        value = m.group()
        number = re.split(r"(?i)\s*(?:ext|x|extension|durchwahl|poste|int)", value)[0]
        digits = sum(c.isdigit() for c in number)
        groups = re.split(r"[ \t./\-()]+", number.strip("+()"))
        if not 7 <= digits <= 15 or _DATE_LIKE.fullmatch(number) or sum(len(g) == 1 for g in groups) > 2:
            continue
        before = (text, max(0, m.start() - 24), m.start())
        national = not value.startswith(("+", "00"))
        if national and _NOT_A_PHONE_LABEL.search(*before):
            continue
        if number.isdigit() and not (number.startswith("0") or (digits == 10 and number[0] in "23456789")):
            continue  # a bare run is a phone number in national format (0...) or a US/Canada number
        if national and digits < 9 and not number.startswith(("0", "(")) and not _PHONE_WORD.search(*before):
            continue  # "2024-117": a short number without a trunk prefix needs a phone word before it
        if n >= MAX_VALIDATED or _is_phone(phonenumbers, value, regions):
            yield m.span()


def _is_phone(phonenumbers, value: str, regions: tuple[str, ...]) -> bool:
    """International numbers need a known country code and a possible length; national ones must be valid
    numbers of one of the regions (libphonenumber's metadata knows each region's number plan)."""
    if value.startswith(("+", "00")):
        try:
            parsed = phonenumbers.parse("+" + value[2:] if value.startswith("00") else value, None)
        except phonenumbers.NumberParseException:
            return False
        return phonenumbers.is_possible_number(parsed)
    for region in regions:
        try:
            if phonenumbers.is_valid_number(phonenumbers.parse(value, region)):
                return True
        except phonenumbers.NumberParseException:
            continue
    return False


# -- street addresses in English, German/Dutch/Nordic, French, Spanish/Italian/Portuguese, Polish; PO boxes
_STREET_SUFFIX = (r"(?:Street|St|Avenue|Ave|Av|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|"
                  r"Terrace|Terr|Way|Parkway|Pkwy|Highway|Hwy|Circle|Cir|Square|Sq|Close|Crescent|Cres|Row|"
                  r"Mews|Gardens|Gdns|Grove|Hill|Walk|Trail|Trl|Alley|Plaza|Loop)")
_NOT_STREET_WORD = (r"(?!(?:the|a|an|of|to|in|on|at|for|and|or|my|your|our|down|up|more|new|other|km|mi|miles|"
                    r"min|mins|minutes?|seconds?|hours?|days?|weeks?|months?|years?|times|people|steps|x)\b)")
_UNIT = r"(?:,?\s*+(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Fl|#)\.?\s*+#?[\w\-]{1,8}+)?"
_US_TAIL = r"(?-i:(?:,\s*+[A-Z][a-z]++(?:\s[A-Z][a-z]++){0,2})?(?:,?\s++[A-Z]{2}\s++\d{5}(?:-\d{4})?)?)"
_UK_POSTCODE = r"(?-i:[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2})"
_EN_ADDRESS = re.compile(
    rf"(?<![\w\-.,])\d{{1,6}}[A-Za-z]?\s++(?:[NSEW]\.?\s++)?"
    rf"(?P<names>(?:{_NOT_STREET_WORD}[A-Za-z][\w'’.\-]{{0,30}}+\s++){{0,4}})"
    rf"(?P<kind>{_STREET_SUFFIX})\b\.?(?:\s++(?:NW|NE|SW|SE|N|S|E|W)\b)?{_UNIT}{_US_TAIL}"
    rf"(?:,?\s++{_UK_POSTCODE}\b)?", re.I)
# one word that ends in a street word, then a house number: Hauptstraße 12, Keizersgracht 123, Storgatan 5
_ONE_WORD_STREET = re.compile(r"(?<![\w\-])(?P<street>[^\W\d_][\w.\-]{2,40}+)\s++\d{1,4}[a-zA-Z]?(?![\w\-])"
                              r"(?:,\s*+\d{3,5}(?:\s?[A-Z]{2}|\s\d{2})?\s++[^\W\d_][\w\-]{1,30}+)?")
_STREET_ENDINGS = ("straße", "strasse", "str.", "weg", "gasse", "platz", "allee", "damm", "ufer", "chaussee",
                   "straat", "laan", "gracht", "plein", "kade", "singel", "dijk", "steeg",
                   "gatan", "gata", "vägen", "veien", "gade", "vej", "torget", "stræde")
_FR_ADDRESS = re.compile(
    r"(?<![\w\-])\d{1,4}(?:\s?(?:bis|ter))?,?\s++(?P<kind>rue|avenue|av\.|boulevard|bd|place|allée|chemin|impasse|"
    r"quai|route|cours|passage|square)\s++(?P<next>[\w'’\-]{1,30}+)(?:\s++[\w'’\-]{1,30}+){0,4}?"
    r"(?:,\s*+\d{5}\s++[^\W\d_][\w\-]{1,30}+|(?=\s*+[,.;\n)]|\s*+$))", re.I)
_FR_ENGLISH_WORDS = ("place", "route", "cours", "passage", "square", "avenue", "boulevard")
_SOUTH_ADDRESS = re.compile(
    r"(?<![\w\-])(?:(?i:Calle|C/|Avenida|Avda\.?|Plaza|Pza\.|Paseo|Carrer|Rua|Viale|Piazza|Corso|Largo|Vicolo|"
    r"Travessa|Praça|Camino|Ronda|ul\.|ulica|aleja)|Via|Av\.)\s++(?:[\w'’.]{1,30}+,?\s++){1,5}?"
    r"(?:n[º°o.]\s*+)?\d{1,4}[a-zA-Z]?(?![\w\-])(?:,\s*+\d{5}\s++[^\W\d_][\w\-]{1,30}+)?")
_PO_BOX = re.compile(r"\b(?:P\.?\s?O\.?\s++Box|Postfach|Apartado(?: de correos)?|Casella postale)"
                     r"\s++\d{1,6}(?: \d{2,4})?\b",
                     re.I)
# "Am Markt 3", "Unter den Linden 77": a German street of several words, with a postcode or a street-like noun
_DE_PREFIXED = re.compile(
    r"(?<![\w\-])(?:Am|An der|An den|Im|In der|In den|Auf dem|Auf der|Unter den|Zum|Zur|Hinter dem|Vor dem|Alte|Alter|"
    r"Neue|Neuer|Große|Kleine)\s++(?P<noun>[A-ZÄÖÜ][\wäöüß.\-]{1,30}+)\s++\d{1,4}[a-z]?(?![\w\-])"
    r"(?P<tail>,\s*+\d{5}\s++[A-ZÄÖÜ][\wäöüß\-]{1,30}+)?")
_DE_STREET_NOUNS = ("markt", "ring", "berg", "bach", "hof", "garten", "graben", "feld", "park", "wall", "tor", "anger",
                    "kamp", "brink", "hang", "höhe", "grund", "wiese", "see", "ufer", "deich", "linden", "steg",
                    "heide", "busch", "kirche", "mühle", "brücke", "hafen", "weide", "eck", "stieg", "rain")
_ADDRESS_END = re.compile(r"\s*+(?:[,.;:!?)\n]|$)")
_UK_POSTCODE_ALONE = re.compile(rf"\b{_UK_POSTCODE}\b")
# a UK postcode in any case ("nw1 6xe") counts only where its area exists (NW) and its inward part keeps the rules:
# a digit, then two letters none of C I K M O V (so "3am", "2pm" are not); ordinals and sizes ("1st", "8gb") never
_UK_AREAS = frozenset("""AB AL B BA BB BD BF BH BL BN BR BS BT BX CA CB CF CH CM CO CR CT CV CW DA DD DE DG DH DL DN DT
DY E EC EH EN EX FK FY G GL GU GY HA HD HG HP HR HS HU HX IG IM IP IV JE KA KT KW KY L LA LD LE LL LN LS LU M ME MK ML
N NE NG NN NP NR NW OL OX PA PE PH PL PO PR RG RH RM S SA SE SG SK SL SM SN SO SP SR SS ST SW SY TA TD TF TN TQ TR TS
TW UB W WA WC WD WF WN WR WS WV YO ZE""".split())
_POSTCODE_SHAPE = re.compile(r"(?P<area>[a-z]{1,2}+)\d(?:\d|[a-z])?\s\d[abd-hjlnp-uw-z]{2}", re.I)
_NOT_AN_INWARD_CODE = re.compile(r"\d(?:st|nd|rd|th|gb|tb|pb|lb|hz|ft|pt|px)", re.I)  # "b2 1st", "m1 8gb"
_ANY_CASE_POSTCODE = re.compile(r"(?<![\w\-])(?P<code>[a-z]{1,2}+\d[a-z\d]?\s\d[a-z]{2})(?![\w\-])", re.I)
_POSTCODE_AFTER = re.compile(r",?\s++(?P<code>[a-z]{1,2}+\d[a-z\d]?\s\d[a-z]{2})(?![\w\-])", re.I)


def uk_postcode_ok(code: str) -> bool:
    m = _POSTCODE_SHAPE.fullmatch(code)
    return bool(m) and m.group("area").upper() in _UK_AREAS and not _NOT_AN_INWARD_CODE.fullmatch(code.split()[-1])


# Lower case ("18 oak lane with her cats") reads like prose ("a 40 mile drive", "the 3 lane highway"), so it
# takes more: a street word that is rarely anything else after a number and a name, at least one name word,
# no name word that is a unit, a quantity or a street word itself, and an address-like place in the sentence:
# it ends a sentence or clause, a postcode or a small word that starts the rest of the sentence follows it, or
# "at", "address" or "send to" comes before it ("to" alone would take "went to 2 different court hearings").
_LOWER_KINDS = frozenset("""street st road rd avenue ave lane ln boulevard blvd drive court terrace crescent close
way parkway mews gardens grove""".split())
_NOT_A_STREET_NAME = frozenset("""street road rd lane ln way drive dr court avenue ave place mile miles mi km
hour hr min minute second day week month year lap block foot feet ft yard yd metre meter mm cm inch tb gb mb usb
ssd hdd disk disc flash thumb hard test wheel point step star bed bedroom car speed hole pin page chapter item
tennis food supreme very too so quite really long short one two three four five six seven eight nine ten
because it's its it is are was were be been that this these those he she they we you i with by from not no all any
some each every than then but if as which who what when where there here""".split())
_FOLLOWS_ADDRESS = re.compile(
    r"['’]s\b|\s++(?:with|and|but|is|was|has|had|have|for|in|on|at|by|near|next|opposite|until|till|since|from|to|"
    r"where|which|that|when|because|so|or|if|as|after|before|tomorrow|today|tonight|yesterday|now|then|instead|please|"
    r"asap|last|this|i|we|he|she|they|you|it|its|it's|the|a|an|our|my|his|her|their|again|already|still|too|"
    r"goes|went|wants|needs|got|gets|looks|sold|costs|will|would|should|can|could|might|must|does|did)\b", re.I)
_ADDRESS_CUE = re.compile(r"(?:\b(?:at|into|outside|opposite|behind|through)|\baddress(?:ed)?(?: is)?"
                          r"|\b(?:deliver|send|sent|ship|post|mail|forward)\w*(?: it| them| this| that)? to)\W{1,3}$",
                          re.I)


def _lower_case_address_ok(m: re.Match, text: str, end: int, postcode_follows: bool) -> bool:
    names = m.group("names").split()
    if m.group("kind").lower() not in _LOWER_KINDS or not names:
        return False
    if any(w.lower().strip(".'’") in _NOT_A_STREET_NAME for w in names):
        return False
    return bool(postcode_follows or _ADDRESS_END.match(text, end) or _FOLLOWS_ADDRESS.match(text, end)
                or _ADDRESS_CUE.search(text, max(0, m.start() - 24), m.start()))


def addresses(text: str) -> Iterable[tuple[int, int]]:
    for m in _EN_ADDRESS.finditer(text):
        value = m.group().rstrip(" ,.")
        end = m.start() + len(value)
        tail = _POSTCODE_AFTER.match(text, end)  # "5 hillside way ox4 2jy": the postcode joins the address
        postcode = tail is not None and uk_postcode_ok(tail.group("code"))
        if any(w[:1].islower() for w in value.split()[1:]) and not _lower_case_address_ok(m, text, end, postcode):
            continue
        yield m.start(), tail.end() if postcode else end
    for m in _ONE_WORD_STREET.finditer(text):
        street = m.group("street").lower()
        if street.endswith(_STREET_ENDINGS) and street not in _STREET_ENDINGS and street not in ("brigade", "renegade"):
            yield m.span()
    for m in _DE_PREFIXED.finditer(text):
        if m.group("tail") or m.group("noun").lower().endswith(_DE_STREET_NOUNS):
            yield m.span()
    for m in _FR_ADDRESS.finditer(text):
        # "1 route that month", "1 square dark chocolate": English words, unless a name or "de ..." follows
        if m.group("kind").lower() in _FR_ENGLISH_WORDS and not (
                m.group("next")[0].isupper() or m.group("next").lower() in ("de", "du", "des", "d'", "la", "saint")):
            continue
        value = m.group().rstrip(" ,.")
        yield m.start(), m.start() + len(value)
    for pattern in (_SOUTH_ADDRESS, _PO_BOX, _UK_POSTCODE_ALONE):
        for m in pattern.finditer(text):
            value = m.group().rstrip(" ,.")
            yield m.start(), m.start() + len(value)
    for m in _ANY_CASE_POSTCODE.finditer(text):
        if uk_postcode_ok(m.group("code")):
            yield m.span()

