"""The privacy guard's redaction: recall on a planted corpus, no damage to ordinary numbers, exact restoration."""

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

from assay.curation.synth.pii import TYPES, Guard, Vault, fill_surrogates, find_pii, iban_ok, luhn_ok

DATA = Path(__file__).resolve().parents[1] / "data" / "pii"


def corpus(name: str = "corpus") -> list[dict]:
    """corpus.jsonl: the lines the recognizers were written against; heldout.jsonl: written afterwards
    and measured once before any fix (24/26), then its two misses were fixed."""
    path = DATA / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_corpus_is_what_it_claims():
    rows = corpus()
    planted = [p for r in rows for p in r["planted"]]
    assert len(rows) >= 60 and len(planted) >= 60
    for row in rows:
        for item in row["planted"]:
            assert item["value"] in row["text"]
    kinds = {p["type"] for p in planted}
    assert {"EMAIL", "PHONE", "CARD", "IBAN", "ADDRESS", "URL", "ACCOUNT"} <= kinds
    assert sum(p["value"].startswith(("+", "00")) for p in planted if p["type"] == "PHONE") >= 8  # international


@pytest.mark.parametrize("name", ["corpus", "heldout"])
def test_recall_on_planted_corpus_and_exact_restoration(name):
    rows = corpus(name)
    planted = redacted = typed = 0
    for row in rows:
        vault = Vault()
        out = vault.redact(row["text"])
        found = {(e.type, e.value) for e in find_pii(row["text"])}
        for item in row["planted"]:
            planted += 1
            redacted += item["value"] not in out
            typed += (item["type"], item["value"]) in found
        back, unknown = vault.restore(out)
        assert back == row["text"] and unknown == 0
    recall = redacted / planted
    assert recall >= 0.95, f"recall {recall:.3f}"
    assert typed / planted >= 0.90  # found as the right kind, with the right extent


def test_ordinary_numbers_are_left_alone():
    for row in corpus():
        if not row["planted"]:
            assert find_pii(row["text"]) == [], row["text"]


def test_same_value_same_placeholder_and_numbering_per_kind():
    vault = Vault()
    text = vault.redact("Mail ann@x.org, then ann@x.org again, and bob@y.org. Call +1 415 555 0132.")
    assert text == "Mail [EMAIL_1], then [EMAIL_1] again, and [EMAIL_2]. Call [PHONE_1]."
    # a title and a body share one vault, so the numbering stays consistent across fields
    assert vault.redact("From bob@y.org") == "From [EMAIL_2]"
    assert vault.counts() == {"EMAIL": 2, "PHONE": 1}


def test_restore_tolerates_model_spellings_and_counts_unknown_placeholders():
    vault = Vault()
    vault.redact("write to ann@x.org")
    restored, unknown = vault.restore("Email [email 1] or [EMAIL_1]; not [EMAIL_7] nor [PHONE_2].")
    assert restored == "Email ann@x.org or ann@x.org; not [EMAIL_7] nor [PHONE_2]."
    assert unknown == 2


def test_checksums():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("GB82 WEST 1234 5698 7654 32") and not iban_ok("GB82 WEST 1234 5698 7654 33")
    # a card-shaped number that fails Luhn is not redacted as a card
    assert [e.type for e in find_pii("ref 4111 1111 1111 1112 ok")] == []


@pytest.mark.parametrize("text", [
    "Meeting on 2024-03-15 at 10:30 in room 4.12",
    "Version 3.11.4 fixes 12 bugs; see https://docs.python.org/3/whatsnew/3.11.html",
    "Total was 1,234.56 EUR for 3 nights",
])
def test_no_false_positives_on_dates_versions_and_public_urls(text):
    assert find_pii(text) == []


def test_urls_with_secrets_go_plain_urls_stay():
    vault = Vault()
    out = vault.redact("see https://example.com/docs/page and https://x.io/cb?code=abc123&state=1")
    assert "https://example.com/docs/page" in out and "[URL_1]" in out and "code=abc123" not in out


def test_surrogates_replace_placeholders_with_neutral_values():
    assert fill_surrogates("Call [PHONE_1] or mail [EMAIL_2].") == "Call +1 555 0100 or mail alex@example.com."


# -- the benchmark corpora (benchmarks/bench_pii.py): secrets, names, national formats, several languages

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_pii  # noqa: E402


def test_bench_corpora_are_what_they_claim():
    rows = corpus("bench") + corpus("bench_heldout") + corpus("addresses_passports")
    planted = [p for r in rows for p in r["planted"]]
    assert len(planted) >= 300 and sum(not r["planted"] for r in rows) >= 100
    kinds = Counter(p["type"] for p in planted)
    assert set(kinds) == set(TYPES) and kinds["SECRET"] >= 80 and kinds["PERSON"] >= 60
    assert len({r["lang"] for r in rows}) >= 8
    for row in rows:
        for item in row["planted"]:
            assert item["value"] in row["text"]


@pytest.mark.parametrize("name", ["bench", "bench_heldout"])
def test_bench_targets_secrets_all_overall_95_and_no_false_positives(name):
    r = bench_pii.measure(corpus(name))
    assert r["caught"]["SECRET"] == r["planted"]["SECRET"], [m for m in r["misses"] if m["type"] == "SECRET"]
    assert sum(r["caught"].values()) / sum(r["planted"].values()) >= 0.95, r["misses"]
    assert r["clean_flagged"] / r["clean_notes"] <= 0.05, r["false_spans"]


@pytest.mark.parametrize("text, secret", [
    ("new key sk-proj-Xk93LmQ0vT7aB2cD4eF6gH8iJ0kL2mN4oP6qR8sT0uV2wX4y for the demo",
     "sk-proj-Xk93LmQ0vT7aB2cD4eF6gH8iJ0kL2mN4oP6qR8sT0uV2wX4y"),
    ("AWS: AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    ("router password: hunter2", "hunter2"),
    ("Passwort ist Sommer2024!", "Sommer2024!"),
    ("mot de passe : soleil42", "soleil42"),
    ("wifi password: correct horse battery staple", "correct horse battery staple"),
    ("PIN 4711 for the card", "4711"),
    ("token ghp_IxNKu8iS2G8NPRVdD53X83RZJzzzzgEOzdme", "ghp_IxNKu8iS2G8NPRVdD53X83RZJzzzzgEOzdme"),
    ("slack xoxb-2481632641-4815162342-Q2wE4rT6yU8iO0pA2sD4fG6h",
     "xoxb-2481632641-4815162342-Q2wE4rT6yU8iO0pA2sD4fG6h"),
    ("Authorization: Bearer 7xj8b7tfq7xkwo886vompzom75wb", "7xj8b7tfq7xkwo886vompzom75wb"),
])
def test_secrets_never_reach_a_remote_teacher(text, secret):
    out = Vault().redact(text)
    assert secret not in out and "[SECRET_1]" in out


@pytest.mark.parametrize("text, value, kind", [
    ("lunch with Anna Schmidt on Thursday", "Anna Schmidt", "PERSON"),
    ("call Okafor about the lease", "Okafor", "PERSON"),
    ("iban de82370400440532013999 please", "de82370400440532013999", "IBAN"),
    ("moving to 742 evergreen terrace, springfield.", "742 evergreen terrace", "ADDRESS"),
    ("Büro München 089/1234567 ab 9", "089/1234567", "PHONE"),
    ("call 4155550132 after 5", "4155550132", "PHONE"),
    ("old address tom at gmail dot com", "tom at gmail dot com", "EMAIL"),
])
def test_names_lowercase_ibans_and_addresses_national_phones_spelled_emails(text, value, kind):
    assert (kind, value) in {(e.type, e.value) for e in find_pii(text)}


@pytest.mark.parametrize("text", [
    "Fixed in commit 3f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39, see the changelog.",
    "Unix time 1700000000 is mid November 2023; order 4155550132 shipped.",
    "Rename getUserAccountSettingsHandler2 to fetchAccountSettings.",
    "Password reset required; the password manager syncs nightly.",
    "Will do the laundry; Grace period ends May 5; Christmas Eve dinner.",
])
def test_hashes_identifiers_and_words_that_look_like_names_stay(text):
    assert find_pii(text) == []


# -- lower-case addresses and postcodes, passport numbers (issue 16): addresses_passports.jsonl was written for
# them, hard negatives included ("a 40 mile drive", "m1 8gb", "passport photos must be 35x45mm")

def test_addresses_passports_corpus_is_what_it_claims():
    rows = corpus("addresses_passports")
    planted = [p for r in rows for p in r["planted"]]
    kinds = Counter(p["type"] for p in planted)
    assert kinds["ADDRESS"] >= 30 and kinds["PASSPORT"] >= 20 and sum(not r["planted"] for r in rows) >= 50
    assert all(p["value"] == p["value"].lower() for p in planted if p["type"] == "ADDRESS")
    postcodes = [p for p in planted if p["type"] == "ADDRESS" and p["value"][0].isalpha()]
    assert len(postcodes) >= 8
    assert len({r["lang"] for r in rows if any(p["type"] == "PASSPORT" for p in r["planted"])}) >= 6
    for row in rows:
        for item in row["planted"]:
            assert row["text"].count(item["value"]) == 1


def test_lower_case_addresses_postcodes_and_passports_are_redacted_and_hard_negatives_are_not():
    r = bench_pii.measure(corpus("addresses_passports"))
    assert r["misses"] == [] and r["typed"] == r["caught"], r["misses"]
    assert r["clean_flagged"] == 0 and r["false_spans"] == [], r["false_spans"]


@pytest.mark.parametrize("text, value, kind", [
    ("she lives at 18 oak lane with her two cats", "18 oak lane", "ADDRESS"),
    ("send it to 221b baker street by friday", "221b baker street", "ADDRESS"),
    ("post to nw1 6xe, not the office", "nw1 6xe", "ADDRESS"),
    ("moved to 5 hillside way ox4 2jy in may", "5 hillside way ox4 2jy", "ADDRESS"),  # the postcode joins it
    ("passport number 533380006 for the form", "533380006", "PASSPORT"),
    ("his passport (uk): 107185703, expires 2031", "107185703", "PASSPORT"),
    ("Passport: 12AB34567 (French)", "12AB34567", "PASSPORT"),
    ("A4827163 is her passport number", "A4827163", "PASSPORT"),
])
def test_the_issue_examples_are_found_with_their_type_and_extent(text, value, kind):
    assert (kind, value) in {(e.type, e.value) for e in find_pii(text)}


def test_a_passport_number_is_whole_or_not_at_all_and_restores_with_its_placeholder():
    # a run of 13 digits fits no passport shape and 20240115 is a date: neither is a passport number
    text = "passport 533380006; old passport " + "x" * 36 + " 1234567890123 and passport 20240115"
    vault = Vault()
    out = vault.redact(text)
    assert out == "passport [PASSPORT_1]; old passport " + "x" * 36 + " 1234567890123 and passport 20240115"
    assert vault.restore(out) == (text, 0)
    assert fill_surrogates(out).startswith("passport X0000000;")


def test_phone_regions_decide_what_a_national_number_is():
    text = "ring 06 1234 5678 tonight"  # a valid number in Italy, not in the US
    assert [e.type for e in find_pii(text, regions=("IT",))] == ["PHONE"]
    assert find_pii(text, regions=("US",)) == []


def test_the_manifest_says_what_the_guard_does_not_find():
    summary = Guard(False, ("DE", "FR")).summary()
    assert summary["phone_regions"] == ["DE", "FR"] and "NER" in summary["not_covered"]
    assert "passport numbers without a word for passport" in summary["not_covered"]


def test_phone_regions_are_checked_before_any_work():
    from assay.curation.synth.config import SynthConfig

    assert SynthConfig(phone_regions=["de", "fr"]).phone_regions == ["DE", "FR"]
    with pytest.raises(ValueError, match="unknown phone region 'XX'"):
        SynthConfig(phone_regions=["XX"])
