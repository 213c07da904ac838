"""Emotion-cultural prompts: named templates that wrap a comment with its annotator's language and culture.

ECSP (Xu, Chi, Yang, 2024) wraps each comment in an "Emotion-Cultural Specific Prompt" that names the
annotator's language/culture and the emotion vocabulary; the paper does not publish the template. The templates
below are ours (placeholders ``{utterance}``, ``{language}``, ``{culture}``, ``{emotions}``):

    none      "{utterance}"                                           the no-prompt ablation
    language  "{language} comment: {utterance}"
    culture   "{culture} culture, {language} comment: {utterance}"
    ecsp      "{culture} culture, {language} comment: {utterance} | emotions: {emotions}"   (default)

The language and culture come first so that truncating a long comment never cuts them; the emotion list (the
label vocabulary, comma-separated) comes last. A prompt option may also be a literal template string using the
same placeholders (it must contain ``{utterance}``).

Languages are named as ArtELingo's CSV names them (english, arabic, chinese, spanish); ISO 639-1 codes and
capitalised names are accepted as aliases (en -> english, ...). The culture words are our choice too.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass

from mml_backbones.errors import ConfigError, DataError

PLACEHOLDERS = frozenset({"utterance", "language", "culture", "emotions"})


@dataclass(frozen=True)
class Language:
    """A language of the annotators.

    Attributes:
        name: canonical name, as in ArtELingo's ``language`` column.
        code: ISO 639-1 code (an accepted alias).
        culture: the word the prompts use for the annotators' culture (our choice).
    """

    name: str
    code: str
    culture: str


LANGUAGES: dict[str, Language] = {
    lang.name: lang
    for lang in (
        Language("english", "en", "western"),
        Language("arabic", "ar", "arab"),
        Language("chinese", "zh", "chinese"),
        Language("spanish", "es", "hispanic"),
    )
}
_ALIASES = {alias: lang.name for lang in LANGUAGES.values() for alias in (lang.name, lang.code)}


def canonical_language(value: object) -> str:
    """The canonical name of a language given by name or ISO code (case-insensitive); DataError if unknown."""
    key = str(value).strip().lower()
    if key not in _ALIASES:
        raise DataError(f"unknown language {value!r}; known: {sorted(LANGUAGES)} (or codes {sorted(_codes())})")
    return _ALIASES[key]


def _codes() -> list[str]:
    return [lang.code for lang in LANGUAGES.values()]


@dataclass(frozen=True)
class PromptTemplate:
    """A named prompt template.

    Attributes:
        name: registry name.
        text: the template with ``{utterance}`` and optionally ``{language}``, ``{culture}``, ``{emotions}``.
        description: one line for listings.
    """

    name: str
    text: str
    description: str = ""

    def __post_init__(self) -> None:
        fields = {f for _, f, _, _ in string.Formatter().parse(self.text) if f is not None}
        unknown = sorted(fields - PLACEHOLDERS)
        if unknown:
            raise ConfigError(f"prompt {self.name!r}: unknown placeholder(s) {unknown}; valid: {sorted(PLACEHOLDERS)}")
        if "utterance" not in fields:
            raise ConfigError(f"prompt {self.name!r} must contain {{utterance}}")

    def fill(self, utterance: str, language: str, emotions: Sequence[str]) -> str:
        """The prompt for one comment written in ``language`` (a name or code) with label vocabulary ``emotions``."""
        lang = LANGUAGES[canonical_language(language)]
        return self.text.format(
            utterance=utterance, language=lang.name, culture=lang.culture, emotions=", ".join(emotions)
        )


TEMPLATES: dict[str, PromptTemplate] = {
    t.name: t
    for t in (
        PromptTemplate("none", "{utterance}", "the comment alone (the no-prompt ablation)"),
        PromptTemplate("language", "{language} comment: {utterance}", "names the comment's language"),
        PromptTemplate(
            "culture",
            "{culture} culture, {language} comment: {utterance}",
            "names the annotator's culture and language",
        ),
        PromptTemplate(
            "ecsp",
            "{culture} culture, {language} comment: {utterance} | emotions: {emotions}",
            "culture, language and the emotion vocabulary (our emotion-cultural specific prompt)",
        ),
    )
}
DEFAULT_PROMPT = "ecsp"


def get_template(prompt: str) -> PromptTemplate:
    """A registered template by name, or a literal template string containing ``{utterance}``."""
    if prompt in TEMPLATES:
        return TEMPLATES[prompt]
    if "{utterance}" in prompt:
        return PromptTemplate("custom", prompt)
    raise ConfigError(f"unknown prompt {prompt!r}; valid: {sorted(TEMPLATES)} or a template containing {{utterance}}")


def apply_prompt(
    prompt: str, utterances: Sequence[str], languages: Sequence[str], emotions: Sequence[str]
) -> list[str]:
    """Each utterance wrapped in ``prompt`` (a template name or string), filled from its own language."""
    if len(utterances) != len(languages):
        raise DataError(f"{len(utterances)} utterances but {len(languages)} languages")
    template = get_template(prompt)
    return [template.fill(u, lang, emotions) for u, lang in zip(utterances, languages)]


__all__ = [
    "DEFAULT_PROMPT",
    "LANGUAGES",
    "TEMPLATES",
    "Language",
    "PromptTemplate",
    "apply_prompt",
    "canonical_language",
    "get_template",
]
