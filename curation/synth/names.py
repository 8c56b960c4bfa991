"""Person names without a named-entity model: a first-name list, honorifics, and the words around a name.

No NER model can be installed offline with clear provenance (spaCy's models are not on PyPI from their
authors; GLiNER and flair fetch weights from a hub at run time), so a name is found when:
  - an honorific leads it: "Dr. Okafor", "Frau Weber", "Mme Dubois";
  - it starts with a first name from data/first_names.txt (US census 1990 plus common names of other
    languages): "Priya", "Anna Schmidt", "Jean-Luc van der Berg" (data/surnames.txt, the census's 1,000
    commonest surnames, tells "Hope Williams" from "See Beth");
  - a word that takes a person introduces it: "call Okafor", "met with Tanaka Hiroshi", "From: Ngata";
  - it stands in a header line: "Attendees: Priya, Kowalczyk, Tom B.".
Not found: a surname alone in running text ("Okafor said"), a name in lower case outside those cues,
and a first name that is also a common word ("Grace", "Will", "May") unless a surname or a cue goes with it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Iterable

_DATA = Path(__file__).resolve().parent / "data"
_WORD = re.compile(r"(?<![\w'’\-])[^\W\d_][\w'’\-]{0,40}+")

HONORIFICS = frozenset("""mr mrs ms miss mx dr prof sir dame lady lord herr frau hr fr monsieur m mme mlle madame
mademoiselle señor senor sr sra srta señora señorita don doña dona signor sig sig.ra signora dott dottssa dhr mevr
pan pani""".split())
# first names that are also common words, places or months: a name only with a surname or a cue beside them
AMBIGUOUS = frozenset("""ai aide al alpha america an angel angle april art asia august autumn bee bell berry bill
blossom bo brain brook brooks buck bud buddy bunny buster candy carry chance charity chase cherry china christian
clay cliff coral crystal dakota dallas dawn dean dee del dell delta denver desire destiny diamond dixie dot drew
earnest easter echo eden else era ernest faith fairy fern florence florida forest france frank gale gay gene
genesis georgia german ginger glen glory golden grace grant guy ha hang harmony heath holly homer honey hope
houston hunter in india irish ivory ivy jack january jean jewel jordan joy june junior justice kenya king lady lance
lane lean liberty long lore love major man manual many maple mark marry max may melody mercy merry meta miles miss
misty moon my nevada noble nova numbers ok olive page pandora paris pat patience pearl peg penny precious prince
princess queen ray rich ring river rob robin rocky rose royal ruby rusty sage sandy santa season see september
sierra sky so sol son song spring star starr sterling stormy sue summer sun sunday sunny sunshine temple tequila
tiny trinity tu un van velvet venus vida viva von ward warner will willow windy winter wood young bay cash chip
clove dusty early fay fortune free gray green hazel heather iris jade lily magnolia violet amber autumn austin
cleveland columbus lincoln madison raleigh savannah sydney victoria virginia carolina orlando phoenix chelsea
geneva venice verona milan valencia vienna angeles argentina trinidad santiago roma sunday monday israel jesus
christ ella una mira paz luz fe alba aurora dolores rosa blanca mercedes porsche eve noel alexa siri
claude gemini ping dann can yen kit monte clifton norma palma""".split())
# capitalized words that a cue may precede but that are not a person
NOT_NAMES = frozenset("""i me you we they he she it the a an this that these my our your his her their its all
everyone everybody someone nobody team teams support sales marketing hr it legal finance accounting engineering
design product ops management board customer customers client clients doctor dentist vet bank landlord plumber
electrician mechanic insurance police office home work school uni mom mum dad mama papa mutti vati oma opa grandma
grandpa granny nan auntie uncle aunt sis bro boss manager re fwd fw monday tuesday wednesday thursday friday
saturday sunday january february march april may june july august september october november december montag
dienstag mittwoch donnerstag freitag samstag sonntag januar februar märz juni juli oktober dezember lundi mardi
mercredi jeudi vendredi samedi dimanche janvier février mars avril mai juin juillet août septembre octobre novembre
décembre lunes martes miércoles jueves viernes sábado domingo enero febrero marzo abril mayo junio julio agosto
septiembre octubre noviembre diciembre google apple amazon microsoft zoom slack teams github gitlab jira notion
whatsapp signal telegram linkedin facebook instagram uber airbnb paypal stripe netflix spotify ikea hq it's
le la el les los las il lo der die das dem het du royal santa hail dimple
tomorrow today tonight yesterday morning evening everyone's mr mrs ms dr prof mon tue tues wed thu thur thurs
fri sat sun jan feb mar apr jun jul aug sep sept oct nov dec""".split()) | HONORIFICS
# "Leigh Woods", "Ashton Court", "Art Institute": a first name that names a place or a building
_PLACE_WORDS = frozenset("""woods wood hill hills court park street st road lane square bridge station hall house
church college school university hospital museum gallery centre center airport institute tower gardens garden
common green field fields heath beach bay island lake river valley way avenue close drive place row terrace
market arena stadium theatre theater library cathedral abbey castle palace day night time foods pharma labs
ltd inc gmbh group bank vets clinic cafe café bar pub restaurant hotel corp corporation co company llc ag sa
plc bv nv spa srl partners consulting solutions systems technologies software media studio studios""".split())
# words before a name that take a person: "call Anna", "met with John Smith", "Termin mit Jürgen"
_STRONG = frozenset("""call called calling ring rang phone phoned text texted email emailed e-mail mail mailed ask
asked tell told remind reminded ping pinged invite invited thank thanks met meet visit visited contact contacted
message messaged dm congratulate interview interviewed hire hired introduce introduced owe owes lend borrowed
appeler rappeler llamar chiamare bellen anrufen fragen frag dear hi hello hey hallo bonjour hola ciao liebe lieber
cher chère querido querida caro cara""".split())
_WITH = frozenset("with to mit an avec à con a met by from von de".split())
_WITH_AFTER = frozenset("""meeting meetings lunch dinner breakfast coffee call sync chat talk talked spoke speak
catch drinks date appointment session interview termin treffen gespräch telefonat anruf rdv rendez-vous déjeuner
dîner réunion reunión cena comida almuerzo riunione pranzo afspraak gesprek 1:1 one-on-one email mail message
nachricht note notes message invite from""".split())
_ONE_ON_ONE = re.compile(r"(?:1:1|1-1|1on1|1-on-1)\s++\w++\s++$", re.I)
_WEAK = frozenset("with mit avec con met cc".split())  # not "and", "from": "and New York", "from Google Cloud"
_NOT_BEFORE_NAME = NOT_NAMES | _STRONG | _WITH | _WEAK | AMBIGUOUS | frozenset("""and but so also then when if
maybe please note todo because after before while since until once tell ask hi dear thanks thank lunch dinner
coffee meeting meet met call email text sent told remind ping und aber dann wenn heute morgen et mais puis quand
y pero luego cuando e ma poi quando en maar dan als""".split())
_PARTICLES = frozenset("van von de der den da di del la le du dos das bin al ten ter zu".split())
_HEADER = re.compile(r"(?im)^[ \t]*+(?:from|to|cc|bcc|von|an|de|à|para|attendees|participants|teilnehmer|"
                     r"contact|kontakt|ansprechpartner(?:in)?|host|organizer|owner|assignee|reviewer|invitees|"
                     r"people|who)[ \t]*+:[ \t]*+(?P<rest>[^\n]{0,300}+)")


@lru_cache(maxsize=2)
def _names(file: str) -> frozenset[str]:
    lines = (_DATA / file).read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def first_names() -> frozenset[str]:
    return _names("first_names.txt")


def _bare(word: str) -> str:
    """The word without a possessive: "Maria's" -> "Maria"."""
    for tail in ("'s", "’s", "'", "’"):
        if word.endswith(tail):
            return word[: -len(tail)]
    return word


def _capitalized(word: str) -> bool:
    return word[0].isupper() and (len(word) == 1 or not word.isupper())


def _name_like(word: str) -> bool:
    """A capitalized word as names are written: "Okafor", "Jean-Luc", "O'Brien", "McKay"; not "ETA-Projekt",
    not a contraction ("I'm")."""
    if "'" in word or "’" in word:
        tail = re.split(r"['’]", word, maxsplit=1)[1]
        if not tail[:1].isupper():
            return False
    return _capitalized(word) and all(part[:1].isupper() and sum(c.isupper() for c in part) <= 2
                                      for part in word.split("-") if part)


def _is_first_name(word: str) -> bool:
    low = word.lower()
    names = first_names()
    return low in names or ("-" in low and low.split("-")[0] in names)


def persons(text: str) -> Iterable[tuple[int, int]]:
    words = [(m.start(), m.start() + len(_bare(m.group())), _bare(m.group())) for m in _WORD.finditer(text)]
    for i, (start, end, word) in enumerate(words):
        if not word:
            continue
        low = word.lower().rstrip(".")
        prev = words[i - 1][2].lower() if i and _gap_ok(text, words[i - 1][1], start) else ""
        prev2 = words[i - 2][2].lower() if i > 1 and prev and _gap_ok(text, words[i - 2][1], words[i - 1][0]) else ""
        if low in HONORIFICS and _capitalized(word) and (low != "m" or text[end:end + 1] == "."):
            last = _extend(text, words, i)
            if last > i:
                yield start, words[last][1]
            continue
        if low in NOT_NAMES or prev in HONORIFICS:
            continue
        strong = prev in _STRONG or (prev in _WITH and (prev2 in _WITH_AFTER or prev2 in _STRONG)) \
            or bool(prev in _WITH and _ONE_ON_ONE.search(text, max(0, start - 24), start))
        if not _capitalized(word):
            # lower case: only a listed, unambiguous first name right after a word that takes a person
            if strong and _is_first_name(low) and low not in AMBIGUOUS and len(low) > 2:
                yield start, end
            continue
        last = _extend(text, words, i)
        if last > i and words[last][2].lower() in _PLACE_WORDS:
            continue
        known = _is_first_name(low)
        if (known and low not in AMBIGUOUS and len(low) > 2) or strong:
            # a capitalized word right before a first name is a family name first ("Tanaka Hiroshi")
            # (not at the start of a sentence, where "Reach Olga" is a verb and a name)
            if known and not strong and prev and _capitalized(words[i - 1][2]) and prev not in _NOT_BEFORE_NAME \
                    and not _starts_sentence(text, words, i - 1):
                start = words[i - 1][0]
            yield start, words[last][1]
        elif last > i and (known or prev in _WEAK) and not _is_common_pair(words, i, last) \
                and words[i + 1][2].lower() not in _PARTICLES and not _first_name_only(words[i + 1][2]):
            yield start, words[last][1]  # "Will Smith", "with Okafor Nnamdi"; not "Dann den Link"
    for m in _HEADER.finditer(text):
        yield from _header_names(text, m.start("rest"), m.end("rest"))


def _gap_ok(text: str, end: int, start: int) -> bool:
    """Two words belong together when only spaces (or one hyphen) stand between them."""
    gap = text[end:start]
    return 0 < len(gap) <= 3 and gap.strip(" \t") in ("", "-")


def _starts_sentence(text: str, words: list, i: int) -> bool:
    before = text[words[i - 1][1]:words[i][0]] if i else text[:words[i][0]]
    return i == 0 or any(c in before for c in ".!?:;\n")


def _extend(text: str, words: list, i: int) -> int:
    """Index of the last word of a name starting at word i: capitalized surnames and particles after it."""
    last, j = i, i + 1
    while j < len(words) and j <= i + 4:
        gap = text[words[j - 1][1]:words[j][0]]
        if not (0 < len(gap) <= 3 and gap.strip(" \t.") in ("", "-")) or "\n" in gap:
            break
        if gap.strip(" \t") == "." and not (j - 1 == i and words[i][2].lower() in HONORIFICS):
            break  # a full stop ends the name, except the one after an honorific
        word = words[j][2]
        low = word.lower()
        if low in _PARTICLES and j + 1 < len(words):
            j += 1
            continue
        if not _name_like(word) or low in NOT_NAMES:
            break
        last, j = j, j + 1
    return last


def _first_name_only(word: str) -> bool:
    """"See Beth": the second word is a first name and no common surname, so the name starts there."""
    return _is_first_name(word) and word.lower() not in _names("surnames.txt")


def _is_common_pair(words: list, i: int, last: int) -> bool:
    """"Grant Access", "May Day": two capitalized words of which the second is no surname either."""
    return all(words[k][2].lower() in AMBIGUOUS or words[k][2].lower() in NOT_NAMES for k in range(i + 1, last + 1))


def _header_names(text: str, start: int, end: int) -> Iterable[tuple[int, int]]:
    """Names listed after "Attendees:" or "From:": each comma-separated item made of capitalized words."""
    pos = start
    for item in re.split(r"(,|;|/|&|\band\b|\bund\b|\bet\b|\by\b)", text[start:end]):
        stripped = item.strip()
        words = stripped.split()
        if stripped and 1 <= len(words) <= 4 and all(_capitalized(w) or w.lower() in _PARTICLES for w in words) \
                and words[0].lower().strip(".") not in NOT_NAMES and "@" not in stripped:
            offset = pos + item.index(stripped)
            yield offset, offset + len(stripped.rstrip("."))
        pos += len(item)
