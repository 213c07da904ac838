"""Emotion-cultural prompt templates: filling per language, the no-prompt ablation, errors."""

from __future__ import annotations

import pytest

from mml_backbones.data.prompts import TEMPLATES, PromptTemplate, apply_prompt, canonical_language, get_template
from mml_backbones.errors import ConfigError, DataError

EMOTIONS = ("awe", "fear")


def test_languages_accept_names_codes_and_any_case() -> None:
    assert canonical_language("en") == "english"
    assert canonical_language(" Arabic ") == "arabic"
    assert canonical_language("ZH") == "chinese"
    assert canonical_language("es") == "spanish"
    with pytest.raises(DataError, match="unknown language 'klingon'"):
        canonical_language("klingon")


def test_each_comment_is_filled_from_its_own_language() -> None:
    out = apply_prompt("ecsp", ["so calm", "so calm"], ["en", "arabic"], EMOTIONS)
    assert out == [
        "western culture, english comment: so calm | emotions: awe, fear",
        "arab culture, arabic comment: so calm | emotions: awe, fear",
    ]
    assert apply_prompt("language", ["x"], ["zh"], EMOTIONS) == ["chinese comment: x"]


def test_no_prompt_ablation_keeps_the_comment_only() -> None:
    assert apply_prompt("none", ["a dark sea"], ["spanish"], EMOTIONS) == ["a dark sea"]


def test_every_template_names_the_utterance_and_the_default_names_language_and_emotions() -> None:
    for t in TEMPLATES.values():
        assert "{utterance}" in t.text
    filled = get_template("ecsp").fill("u", "zh", EMOTIONS)
    assert "chinese" in filled and "awe, fear" in filled


def test_custom_template_strings_and_errors() -> None:
    assert apply_prompt("[{language}] {utterance}", ["hi"], ["en"], EMOTIONS) == ["[english] hi"]
    with pytest.raises(ConfigError, match="unknown prompt"):
        get_template("fancy")
    with pytest.raises(ConfigError, match="unknown placeholder"):
        PromptTemplate("bad", "{utterance} {mood}")
    with pytest.raises(ConfigError, match="utterance"):
        PromptTemplate("bad", "{language} only")
    with pytest.raises(DataError, match="unknown language"):
        apply_prompt("ecsp", ["x"], ["xx"], EMOTIONS)
    with pytest.raises(DataError, match="2 utterances but 1 languages"):
        apply_prompt("ecsp", ["x", "y"], ["en"], EMOTIONS)
