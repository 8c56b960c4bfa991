"""Tasks: templates render versioned messages; each parser accepts good replies and names what is wrong with bad
ones."""

import json

import pytest

from assay.curation.synth.tasks import (
    TASKS,
    TEMPLATES,
    WRITE_NOTE,
    Labels,
    Prompt,
    get_task,
    load_template,
    parse_note,
    parse_scores,
)
from assay.errors import NotFoundError

PROMPT = Prompt(Labels(("recipes", "work", "travel"), ("low", "medium", "high"), ("work", "personal")), qa_pairs=2)
NOTE = {"title": "Soup", "text": "Boil 2 l water. Add salt and the leeks; simmer 20 minutes."}


def test_every_template_declares_a_version_and_renders_the_note_in_note_tags():
    for path in TEMPLATES.glob("*.j2"):
        assert load_template(path.stem).version
    for task in TASKS.values():
        messages = task.render(NOTE, PROMPT)
        assert [m["role"] for m in messages] == ["system", "user"]
        # rule teachers read the <note> block; remote teachers must see only the note we hand them
        assert f"<note>\n{NOTE['text']}\n</note>" in messages[-1]["content"]
        assert task.prompt_version.startswith(f"{task.template}/v1-")


def test_prompt_version_changes_with_the_template_text(tmp_path, monkeypatch):
    import assay.curation.synth.tasks as tasks

    original = TASKS["summarize"].prompt_version
    source = (TEMPLATES / "summarize.j2").read_text()
    (tmp_path / "summarize.j2").write_text(source.replace("one or two", "1-2"))
    monkeypatch.setattr(tasks, "TEMPLATES", tmp_path)
    load_template.cache_clear()
    try:
        edited = load_template("summarize").prompt_version
    finally:
        load_template.cache_clear()
    assert edited.startswith("summarize/v1-") and edited != original


def test_classify_prompt_and_student_instruction_name_the_labels():
    task = get_task("classify")
    assert "recipes, work, travel" in task.render(NOTE, PROMPT)[-1]["content"]
    assert "recipes, work, travel" in task.student_instruction(PROMPT)


def test_unknown_task_suggests_the_closest():
    with pytest.raises(NotFoundError, match="Did you mean 'summarize'"):
        get_task("sumarize")


@pytest.mark.parametrize("reply, expected", [
    ("Leek soup: boil water, add salt and leeks, simmer 20 minutes.",
     "Leek soup: boil water, add salt and leeks, simmer 20 minutes."),
    ("Here is a summary: A leek soup recipe. It simmers for 20 minutes. Serve hot.",
     "A leek soup recipe. It simmers for 20 minutes."),
    ('"A quick leek soup recipe."', "A quick leek soup recipe."),
    ("```\nA quick leek soup recipe.\n```", "A quick leek soup recipe."),
])
def test_summary_good(reply, expected):
    parsed = TASKS["summarize"].parse(reply, PROMPT)
    assert parsed.ok and parsed.output == expected


@pytest.mark.parametrize("reply, reason", [
    ("", "empty_reply"), (None, "empty_reply"), ("Soup.", "too_short"),
    ('{"summary": "soup"}', "not_prose"), ("soup, leeks, salt, water, minutes", "not_prose"),
    ("A " + "very " * 120 + "long sentence.", "too_long"),
])
def test_summary_bad(reply, reason):
    parsed = TASKS["summarize"].parse(reply, PROMPT)
    assert not parsed.ok and parsed.reason == reason and parsed.output is None


@pytest.mark.parametrize("reply", [
    '{"category": "recipes", "importance": "low", "context": "personal"}',
    'Sure! ```json\n{"category": "Recipes", "importance": "LOW", "context": "personal", "why": "soup"}\n```',
    "category: recipes\nimportance: low\ncontext: personal",
])
def test_classify_good(reply):
    parsed = TASKS["classify"].parse(reply, PROMPT)
    assert parsed.ok
    assert json.loads(parsed.output) == {"category": "recipes", "importance": "low", "context": "personal"}


@pytest.mark.parametrize("reply, reason", [
    ("I think it is about soup.", "invalid_json"),
    ('{"category": "cars", "importance": "low", "context": "work"}', "label_not_allowed:category"),
    ('{"category": "recipes", "importance": "urgent", "context": "work"}', "label_not_allowed:importance"),
    ('{"category": "recipes", "context": "work"}', "missing_field:importance"),
    ("[1, 2]", "invalid_json"),
])
def test_classify_bad(reply, reason):
    parsed = TASKS["classify"].parse(reply, PROMPT)
    assert not parsed.ok and parsed.reason == reason


def test_extract_good_normalizes_lists():
    reply = ('{"people": "Ann", "dates": ["Friday", "Friday"], "action_items": null, '
             '"urls": ["https://x.org/a", "[URL_1]"]}')
    parsed = TASKS["extract"].parse(reply, PROMPT)
    assert parsed.ok
    assert parsed.value == {"people": ["Ann"], "dates": ["Friday"], "action_items": [],
                            "urls": ["https://x.org/a", "[URL_1]"]}


@pytest.mark.parametrize("reply, reason", [
    ('{"people": [], "dates": [], "action_items": [], "urls": ["not a url"]}', "invalid_field:urls"),
    ('{"people": [], "dates": [], "action_items": [], "actions": [], "urls": []}', "unknown_field:actions"),
    # a "{}" buried in a rambling reply is not an extraction
    ('JSON: {"note": "x", "ref": "0,{},1"', "missing_field:people"),
    ("no json here", "invalid_json"),
    ('{"people": [1, 2], "dates": [], "action_items": [], "urls": []}', "invalid_field:people"),
])
def test_extract_bad(reply, reason):
    parsed = TASKS["extract"].parse(reply, PROMPT)
    assert not parsed.ok and parsed.reason == reason


@pytest.mark.parametrize("reply", [
    '[{"question": "How long does it simmer?", "answer": "20 minutes."}, '
    '{"question": "What goes in?", "answer": "Leeks and salt."}, {"question": "extra", "answer": "cut"}]',
    '{"pairs": [{"question": "How long does it simmer?", "answer": "20 minutes."}, '
    '{"question": "What goes in?", "answer": "Leeks and salt."}]}',
    "Q: How long does it simmer?\nA: 20 minutes.\nQ: What goes in?\nA: Leeks and salt.",
])
def test_qa_good_and_capped(reply):
    parsed = TASKS["qa"].parse(reply, PROMPT)
    assert parsed.ok and len(parsed.value) == 2  # qa_pairs=2 caps the list
    assert parsed.value[0] == {"question": "How long does it simmer?", "answer": "20 minutes."}


@pytest.mark.parametrize("reply, reason", [
    ("[]", "no_pairs"), ('[{"question": "Why?", "answer": "  "}]', "invalid_field:answer"),
    ('[{"question": "Why?"}]', "missing_field:answer"), ("Just some words.", "invalid_json"),
])
def test_qa_bad(reply, reason):
    parsed = TASKS["qa"].parse(reply, PROMPT)
    assert not parsed.ok and parsed.reason == reason


def test_write_note_and_judge_scores():
    assert parse_note("Note: Pancakes with 2 eggs, flour and milk; rest the batter.", PROMPT).output == \
        "Pancakes with 2 eggs, flour and milk; rest the batter."
    assert parse_note("Sure!", PROMPT).reason == "too_short"
    messages = load_template(WRITE_NOTE.template).render(cell={"category": "recipes"}, examples=["a b c"], slot=1)
    assert "<example>\na b c\n</example>" in messages[-1]["content"]
    assert parse_scores('{"scores": [4, 2.5]}', 2).value == [4.0, 2.5]
    assert parse_scores("[5]", 2).reason == "wrong_score_count"
    assert parse_scores('{"scores": ["high", 1]}', 2).reason == "invalid_scores"
