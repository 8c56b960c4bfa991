"""How several annotators' answers to one record become one answer (no server: pure functions)."""

import pytest

from assay.curation.review.agreement import majority, resolve_text


def test_labels_go_by_majority_and_a_tie_goes_to_the_correction():
    assert majority(["work", "personal", "work"]) == "work"
    assert majority(["work", "personal"], prefer_not="work") == "personal"  # beats the teacher's suggestion
    assert majority(["personal", "work"]) == "personal"  # otherwise the earliest given, not set order


def test_text_rules():
    assert resolve_text([" Call the bank. ", "Call the bank.", "Phone the bank today."], "majority", None) == \
        "Call the bank."
    assert resolve_text(["Call the bank.", "Call the bank before Friday."], "majority", "Call the bank.") == \
        "Call the bank before Friday."  # a tie: the edit wins over the suggestion left as it was
    assert resolve_text(["Call the bank.", "Call the bank before Friday."], "longest", None) == \
        "Call the bank before Friday."
    with pytest.raises(ValueError, match="unknown text rule 'random'"):
        resolve_text(["x"], "random", None)
