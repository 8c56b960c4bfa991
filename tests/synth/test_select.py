"""Selection strategies over a fixed set of candidates: consensus, rules, judge, and ROUGE-L itself."""

import pytest

from assay.curation.synth.contract import Reply
from assay.curation.synth.select import Candidate, Group, SelectContext, consensus, get_strategy, judge, rules
from assay.curation.synth.tasks import TASKS, Labels, Prompt
from assay.errors import NotFoundError

PROMPT = Prompt(Labels(("recipes", "work"), ("low", "high"), ("work", "personal")))
NOTE = {"title": None,
        "text": "Boil water, add the leeks and salt, and simmer the soup for twenty minutes before serving."}


def cand(teacher: str, reply: str, task: str = "summarize", finish: str = "stop") -> Candidate:
    return Candidate(teacher, TASKS[task].parse(reply, PROMPT), reply, finish)


def test_consensus_picks_the_candidate_closest_to_the_others():
    group = Group("n1", NOTE, [
        cand("t1", "The note is about something else entirely, a car repair."),
        cand("t2", "A leek soup recipe that simmers twenty minutes."),
        cand("t3", "A leek soup recipe: simmer for twenty minutes."),
        cand("t4", "Leek soup recipe, simmer twenty minutes before serving."),
    ])
    [choice] = consensus([group], SelectContext(TASKS["summarize"]))
    assert choice.index in (1, 2, 3) and choice.index != 0
    assert choice.scores[0] < min(choice.scores[1:])
    assert 0 < choice.agreement <= 1


def test_invalid_candidates_are_never_chosen_and_a_group_without_any_gets_none():
    groups = [Group("n1", NOTE, [cand("t1", "{not prose}"), cand("t2", "A leek soup recipe for a weeknight.")]),
              Group("n2", NOTE, [cand("t1", ""), cand("t2", "Soup.")])]
    for strategy in (consensus, rules):
        first, second = strategy(groups, SelectContext(TASKS["summarize"]))
        assert first.index == 1 and first.agreement is None  # one valid candidate: nothing to agree with
        assert second.index is None


def test_structured_tasks_compare_fields_not_text():
    group = Group("n1", NOTE, [
        cand("t1", '{"category": "recipes", "importance": "low", "context": "personal"}', "classify"),
        cand("t2", '{"category": "work", "importance": "high", "context": "work"}', "classify"),
        cand("t3", '{"category": "recipes", "importance": "high", "context": "personal"}', "classify"),
    ])
    [choice] = consensus([group], SelectContext(TASKS["classify"]))
    # t3 shares 2 fields with t1 and 1 with t2; t1 shares 2 and 0
    assert choice.index == 2 and choice.agreement == pytest.approx((2 / 3 + 1 / 3) / 2)


def test_rules_prefer_finished_in_range_outputs_that_are_not_the_note_itself():
    group = Group("n1", NOTE, [
        cand("copy", NOTE["text"]),
        cand("cut", "A leek soup recipe that simmers for twenty", finish="length"),
        cand("good", "A leek soup recipe that simmers for twenty minutes."),
    ])
    [choice] = rules([group], SelectContext(TASKS["summarize"]))
    assert group.candidates[choice.index].teacher == "good"
    assert choice.scores[2] > choice.scores[1] and choice.scores[2] > choice.scores[0]


def test_judge_uses_the_judge_scores_and_protects_what_it_sends():
    sent = []

    def ask(spec, requests):
        sent.extend(requests)
        return [Reply('{"scores": [2, 5, 3]}', "stop", {}, 0.0, False, None, spec) for _ in requests]

    group = Group("n1", {"text": "Mail ann@x.org about soup"}, [
        cand("t1", "A note about soup and an email."), cand("t2", "Email ann@x.org about the soup."),
        cand("t3", "Soup email reminder for later today.")])
    ctx = SelectContext(TASKS["summarize"], judge="anthropic:claude-haiku-4-5", ask=ask,
                        protect=lambda note_id, text: text.replace("ann@x.org", "[EMAIL_1]"))
    [choice] = judge([group], ctx)
    assert choice.index == 1 and choice.scores == [2.0, 5.0, 3.0] and choice.detail is None
    assert len(sent) == 1 and "ann@x.org" not in str(sent[0].messages) and "[EMAIL_1]" in str(sent[0].messages)
    assert sent[0].metadata["role"] == "judge"


def test_a_judge_reply_that_fails_to_parse_falls_back_to_consensus_and_says_so():
    def ask(spec, requests):
        return [Reply("I like the second one best.", "stop", {}, 0.0, False, None, spec) for _ in requests]

    group = Group("n1", NOTE, [cand("t1", "A leek soup recipe, twenty minutes."),
                               cand("t2", "A leek soup recipe with twenty minutes of simmering.")])
    [choice] = judge([group], SelectContext(TASKS["summarize"], judge="openai:gpt-4o-mini", ask=ask))
    assert choice.index is not None and choice.detail == "judge_failed:invalid_json, consensus used"


def test_unknown_strategy_suggests_the_closest():
    assert get_strategy("rules") is rules
    with pytest.raises(NotFoundError, match="Did you mean 'consensus'"):
        get_strategy("consensu")


def test_a_tie_goes_to_the_candidate_that_finished():
    group = Group("n1", NOTE, [cand("t1", "A leek soup recipe that simmers for", finish="length"),
                               cand("t2", "A leek soup recipe that simmers for twenty minutes.")])
    [choice] = consensus([group], SelectContext(TASKS["summarize"]))
    assert choice.index == 1


def test_embedding_similarity_uses_the_embedder():
    import numpy as np

    class Embedder:
        def encode(self, texts, normalize_embeddings=True):
            vectors = np.array([[1.0, 0.0] if "soup" in t else [0.0, 1.0] for t in texts])
            return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    group = Group("n1", NOTE, [cand("t1", "Nothing in common with the others here."),
                               cand("t2", "A soup recipe for a weeknight dinner."),
                               cand("t3", "Leek soup, twenty minutes.")])
    [choice] = consensus([group], SelectContext(TASKS["summarize"], similarity="embedding", embedder=Embedder()))
    assert choice.index == 1 and choice.agreement == pytest.approx(0.5)
