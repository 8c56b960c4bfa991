"""Secrets written in notes: API keys, tokens, private keys, passwords and PINs, and high-entropy strings.

Provider key shapes follow detect-secrets' and gitleaks' plugins; the entropy check follows detect-secrets'
high-entropy-string plugins, with guards so that words, paths and content hashes are not taken for keys.
Every pattern is anchored by a look-behind that rejects starts inside a run it would consume, and uses
possessive repeats, so each character is examined a bounded number of times: linear time on any input.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Iterable

# -- provider key shapes: specific enough to need no entropy check
_KEY = re.compile(
    r"(?<![\w-])(?:"
    r"sk-(?:ant-|proj-|svcacct-|admin-|or-v1-)?[A-Za-z0-9_\-]{16,}+"  # OpenAI, Anthropic, OpenRouter
    r"|gh[pousr]_[A-Za-z0-9]{30,}+|github_pat_[A-Za-z0-9_]{30,}+"  # GitHub
    r"|xox[abposre]-[A-Za-z0-9\-]{10,}+|xapp-[A-Za-z0-9\-]{10,}+"  # Slack
    r"|(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}(?![A-Za-z0-9])"  # AWS access key id
    r"|AIza[0-9A-Za-z_\-]{35}"  # Google API key
    r"|(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{10,}+|whsec_[0-9A-Za-z]{20,}+"  # Stripe
    r"|glpat-[A-Za-z0-9_\-]{20,}+"  # GitLab
    r"|hf_[A-Za-z0-9]{30,}+"  # Hugging Face
    r"|npm_[A-Za-z0-9]{36}|pypi-[A-Za-z0-9_\-]{50,}+"  # npm, PyPI
    r"|SG\.[\w\-]{16,}+\.[\w\-]{20,}+"  # SendGrid
    r"|(?:SK|AC)[0-9a-f]{32}(?![0-9a-f])"  # Twilio
    r"|key-[0-9a-zA-Z]{32}(?![0-9a-zA-Z])"  # Mailgun
    r"|\d{8,10}:AA[0-9A-Za-z_\-]{33}"  # Telegram bot
    r"|eyJ[\w\-]{8,}+\.[\w\-]{8,}+\.[\w\-]{8,}+"  # JWT: header.payload.signature
    r")")
# "sk-learn-tutorial-notes" is hyphenated words, not a key
_WORDS_AFTER_SK = re.compile(r"sk-[a-z]{1,12}+(?:-[a-z]{1,12}+)*+")
_BEARER = re.compile(r"\b(?:Bearer|Authorization:\s*+(?:Basic|Token|Bearer))\s++([A-Za-z0-9._~+/=\-]{8,}+)", re.I)
_PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z0-9]{1,12}+ ){0,4}PRIVATE KEY(?: BLOCK)?-----[A-Za-z0-9+/=\s:,]{0,20000}+"
                          r"(?:-----END (?:[A-Z0-9]{1,12}+ ){0,4}PRIVATE KEY(?: BLOCK)?-----)?")

# -- key = value, as detect-secrets' keyword plugin: a name that says secret, then what follows it
_KEY_NAMES = (r"api[_\- ]?key|apikey|access[_\- ]?key(?:[_\- ]?id)?|secret(?:[_\- ]?(?:access[_\- ]?)?key)?|"
              r"client[_\- ]?secret|(?:auth|access|refresh|api|bot|bearer|session)[_\- ]?token|token|"
              r"private[_\- ]?key|aws_secret_access_key|signing[_\- ]?key|webhook[_\- ]?secret|"
              r"(?:license|licence|product|recovery|activation|encryption|master)[_\- ]?key|"
              r"(?:recovery|backup|2fa|mfa)[_\- ]?codes?|seed[_\- ]?phrase|"
              r"lizenzschlüssel|wiederherstellungsschlüssel")
_PASSWORD_NAMES = (r"passwords?|passwd|pass(?:word|code|phrase|wort)?|pwd|pw|kennwort|mot de passe|mdp|"
                   r"contraseñas?|contrasena|contrasenya|clave|senha|wachtwoord|lösenord|losenord|passord|"
                   r"adgangskode|salasana|hasło|haslo|parola|heslo|jelszó|пароль|密码|パスワード")
_PIN_NAMES = (r"pin(?:[\- ]?(?:code|number|nummer|nr))?|geheimzahl|code pin|código pin|codice pin|"
              r"(?:door|gate|alarm|lock|entry|keypad|access|garage|safe|security|bike lock)[\- ]code|"
              r"türcode|torcode|alarmcode|schlosscode|zahlencode|code (?:de la )?porte|code d'accès|digicode|"
              r"código de (?:acceso|la puerta)|codice (?:del )?cancello|cvv2?|cvc")
# "for the router", "für das WLAN", "du wifi", "della mail": a few words between the name and the value
_QUALIFIER = (r"(?:\s++(?:for|für|fürs|pour|para|per|of|to|at|on|del|de|du|des|der|die|das|dem|den|vom|zum|zur|"
              r"della|dello|delle|dei|do|da|dos|van|voor|för|till|til|dla|na)(?:\s++[^\s:=]{1,24}+){1,3}?)?")
# an explicit separator may follow a qualifier; a bare space only the name itself ("password hunter2")
_SEPARATOR = (r"(?:{q}(?P<sep>\s*+[:=]|\s*+=>|\s++(?:is|was|ist|war|est|es|era|é|er|är|jest|è|lautet|now)\b"
              r"(?:\s*+:)?)|(?P<bare>\s++(?=\S)))").format(q=_QUALIFIER)
_VALUE = (r"\s*+(?:[\"'“‘«„](?P<quoted>[^\"'”’»“\n]{1,80}+)[\"'”’»“]"
          r"|(?P<token>[^\s\"'“”‘’«»]{1,120}+))")
_PASSWORD = re.compile(rf"(?<!\w)(?P<name>{_PASSWORD_NAMES})(?!\w){_SEPARATOR}{_VALUE}", re.I)
_SECRET_ASSIGN = re.compile(rf"(?<![\w\-])(?:{_KEY_NAMES})(?!\w){_SEPARATOR}{_VALUE}", re.I)
_PIN = re.compile(rf"(?<!\w)(?:{_PIN_NAMES})(?![^\W\d]){_QUALIFIER}"
                  r"(?:\s*+[:=#]|\s++(?:is|ist|est|es|é|er|är|è|lautet|:))?"
                  r"\s*+(?P<pin>(?-i:[0-9A-D][0-9A-D #*\-]{2,11}+))", re.I)
# "password: correct horse battery staple": four or more lower-case words after "password:" are the password
_PASSPHRASE = re.compile(r"[a-zà-ÿß]{2,20}+(?: [a-zà-ÿß]{2,20}+){3,7}+(?![\w\-])")
# Google's app passwords: four groups of four lower-case letters, after a word that says password
_APP_PASSWORD = re.compile(r"(?<![\w\-])[a-z]{4}(?: [a-z]{4}){3}(?![\w\-])")
# words that follow "password" in prose and are not passwords ("password is required", "Passwort: siehe Tresor")
_NOT_A_VALUE = frozenset("""the a an is in on at to of for and or my your our his her their this that it its same
new old see below above here there required expired changed reset forgotten wrong correct incorrect unknown empty
none null manager managers protected protection policy rules field hint saved stored hidden change
changes update updated please check ask still also now then in not set sent send der die das ist im in siehe
gleiche neue alte le la les est dans voir même nouveau el la los es en ver mismo nuevo vault tresor bitwarden
1password keepass keychain lastpass""".split())

_TOKEN = re.compile(r"(?<![A-Za-z0-9+/=_\-])[A-Za-z0-9+/_\-]{20,}+={0,2}+")
_SECRET_NEARBY = re.compile(r"key|token|secret|api|auth|passw|pwd|credential|signature|bearer|session|cookie|"
                            r"private|aws|schlüssel|clé|clave|chave", re.I)
_HEX = re.compile(r"[0-9a-fA-F\-]+")


def find_secrets(text: str) -> Iterable[tuple[int, int]]:
    """Spans of keys, tokens, private keys, passwords and PINs (not the words that introduce them)."""
    for m in _KEY.finditer(text):
        if not _WORDS_AFTER_SK.fullmatch(m.group()):
            yield m.span()
    for m in _BEARER.finditer(text):
        yield m.span(1)
    for m in _PRIVATE_KEY.finditer(text):
        yield m.span()
    for m in _PASSWORD.finditer(text):
        explicit = (m.group("sep") or "").strip() in (":", "=", "=>")
        phrase = _PASSPHRASE.match(text, m.start("token")) if explicit and m.group("token") else None
        span = phrase.span() if phrase else _value_span(m, letters_ok=explicit)
        if span:
            yield span
    for m in _SECRET_ASSIGN.finditer(text):
        span = _value_span(m, letters_ok=False)
        if span and (span[1] - span[0] >= 6 or m.group("quoted")):
            yield span
    for m in _APP_PASSWORD.finditer(text):
        if re.search(r"passw|kennw|mot de passe|contraseña", text[max(0, m.start() - 40):m.start()], re.I):
            yield m.span()
    for m in _PIN.finditer(text):
        pin = m.group("pin").rstrip(" -")
        end = m.start("pin") + len(pin)
        # "digicode 4B72" yes, "PIN 12 Abc" no: the value ends where a word would go on
        if 3 <= sum(c.isdigit() for c in pin) <= 10 and not (end < len(text) and text[end].isalnum()):
            yield m.start("pin"), end


def _value_span(m: re.Match, *, letters_ok: bool) -> tuple[int, int] | None:
    """The value after a password or key name, or None when it reads as ordinary prose."""
    if m.group("quoted"):
        return m.span("quoted")
    value = m.group("token").rstrip(".,;:)]}")
    if value.rstrip("!?").isalpha():
        value = value.rstrip("!?")  # "Passwort vergessen?" is a question, "Sommer2024!" a password
    if len(value) < 3 or value.lower() in _NOT_A_VALUE:
        return None
    bare = m.group("bare") is not None
    if bare and m.groupdict().get("name", "").lower() == "pass":
        return None  # "pass 2024 exam": only "pass:" or "pass =" introduce a password
    plain_word = value.isalpha() and (value.islower() or value[1:].islower())
    # after "is" or a bare space only something that does not read as a word: "password hunter2", not "password reset"
    if plain_word and (bare or not letters_ok):
        return None
    if bare and value.isalpha():
        return None
    return m.start("token"), m.start("token") + len(value)


def find_high_entropy(text: str) -> Iterable[tuple[int, int]]:
    """Random-looking strings of 20+ characters, as detect-secrets' entropy plugins: base64-like runs whose
    characters change class often and spread widely; hex runs only near a word that names a secret,
    since a commit id or checksum in a note is content, not a credential."""
    for m in _TOKEN.finditer(text):
        token = m.group().strip("/_-=")
        if len(token) < 20:
            continue
        if _HEX.fullmatch(token):
            if len(token) >= 32 and _SECRET_NEARBY.search(text, max(0, m.start() - 40), m.start()):
                yield m.span()
        elif _random_looking(token):
            yield m.span()


def _random_looking(token: str) -> bool:
    upper = sum(c.isupper() for c in token)
    lower = sum(c.islower() for c in token)
    digits = sum(c.isdigit() for c in token)
    classes = [("u" if c.isupper() else "l" if c.islower() else "d") for c in token if c.isalnum()]
    changes = sum(a != b for a, b in zip(classes, classes[1:])) / max(1, len(classes) - 1)
    if "/" in token and any(len(part) < 4 for part in token.split("/")):
        return False  # a path with short segments: usr/lib, 2024/03/report
    if upper and lower and digits:
        # camelCase names ("getUserAccountSettings2") change class often too, but each capital starts a word
        starts_word = sum(c.isupper() and token[i + 1:i + 3].isalpha() and token[i + 1:i + 3].islower()
                          for i, c in enumerate(token))
        return changes >= 0.3 and starts_word < 0.7 * upper and entropy(token) >= 0.8 * math.log2(min(len(token), 64))
    # one letter case and digits (base36 ids): digits must be frequent, so long words with a year do not pass
    return (upper == 0 or lower == 0) and digits >= len(token) / 4 and len(token) >= 24 and changes >= 0.3 \
        and entropy(token) >= 0.75 * math.log2(min(len(token), 64))


def entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values()) if n else 0.0
