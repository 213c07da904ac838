"""A synthetic image + comment emotion task where the annotator's language changes what the words mean.

Made to test ECSP's two ideas offline, with ArtELingo's structure: several annotators comment on each painting,
each in their own language, and each reports their own emotion.

Paintings. Each painting has a dominant emotion (balanced over the nine ArtELingo emotions). An annotator's
emotion (the label) is the painting's dominant one with probability ``agreement``, else uniformly random.
Every painting has ``comments_per_painting`` comments; splits are by painting (no painting in two splits).

Comment. Every emotion has ``cue_words_per_class`` cue words (pseudo-words). The words are shared by all
languages but their meaning is not: in the i-th language a word whose base emotion is the k-th of its valence
group (positive: amusement, awe, contentment, excitement; negative: anger, disgust, fear, sadness; something
else) signals the ((k + i) mod group size)-th emotion of that group ("false friends" that keep the valence).
A comment holds ``cues_per_comment`` cue words for the annotator's emotion among 3-6 shared filler words; each
cue is, with probability ``text_noise``, a word of a uniformly random emotion instead. Nothing in the comment
tells the language, so without a prompt naming it a cue word is ambiguous between len(languages) emotions.

Image (3, S, S), one per painting: mean = a valence colour of the dominant emotion (one channel per group,
distance ``valence_strength`` between groups) + horizontal stripes (frequency 1-4 by position in the group,
distance ``class_strength`` between the emotions of a group), plus unit Gaussian pixel noise. It tells the
painting's valence well and its dominant emotion faintly: a weaker signal than the prompted comment, and a
complementary one. The stripes are unchanged by a horizontal flip. As in ArtELingo, a model can memorise the
training paintings, whose comments it sees several times.

``info["bayes_accuracy"]`` gives Bayes-optimal accuracies (Monte Carlo, with standard errors) of the text with and
without the language, the image, and both, so that a run can be read against what is attainable.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from mml_backbones.data.dataset import DatasetSplits, MultimodalDataset
from mml_backbones.data.emotions import EMOTIONS, VALENCE
from mml_backbones.data.prompts import DEFAULT_PROMPT, apply_prompt, canonical_language
from mml_backbones.data.synthetic import bayes_info
from mml_backbones.data.text import tokenize_splits
from mml_backbones.errors import ConfigError

BAYES_MC_SAMPLES = 40_000
#: tokens per prompted comment: the "ecsp" prompt with the longest comment needs 36
DEFAULT_MAX_LENGTH = 40
_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"


@dataclass(frozen=True)
class EmotionSyntheticSpec:
    """The task's distribution and split sizes.

    Attributes:
        languages: annotator languages (canonical names), drawn uniformly per sample.
        cue_words_per_class: cue words of each emotion.
        cues_per_comment: cue words in one comment.
        filler_words: size of the shared filler vocabulary.
        min_fillers, max_fillers: filler words per comment (uniform).
        text_noise: probability that a cue word is that of a uniformly random emotion.
        agreement: probability that an annotator's emotion is the painting's dominant one.
        comments_per_painting: comments (annotators) per painting.
        image_size: S of the (3, S, S) images (>= 9 so that the four stripe patterns are orthogonal).
        image_features_dim: 0 for pixel images; D > 0 gives D-dimensional image feature vectors instead (the
            same Gaussian model in a random orthonormal frame, as if extracted by a pretrained image model).
        valence_strength: distance between the valence groups' image means, in pixel-noise units.
        class_strength: distance between the image means of two emotions of one group, in pixel-noise units.
        n_train, n_val, n_test: split sizes.
        structure_seed: seed of the words (the distribution); ``seed`` in the loader draws the samples.
    """

    languages: tuple[str, ...] = ("english", "arabic", "chinese")
    cue_words_per_class: int = 3
    cues_per_comment: int = 2
    filler_words: int = 40
    min_fillers: int = 3
    max_fillers: int = 6
    text_noise: float = 0.4
    agreement: float = 0.6
    comments_per_painting: int = 5
    image_size: int = 16
    image_features_dim: int = 0
    valence_strength: float = 6.0
    class_strength: float = 2.0
    n_train: int = 3000
    n_val: int = 600
    n_test: int = 2000
    structure_seed: int = 0

    def __post_init__(self) -> None:
        if not self.languages:
            raise ConfigError("emotion_synthetic: at least one language is needed")
        names = [canonical_language(lang) for lang in self.languages]
        if len(set(names)) != len(names):
            raise ConfigError(f"emotion_synthetic: duplicate languages {list(self.languages)}")
        for name in ("text_noise", "agreement"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"emotion_synthetic: {name} must be in [0, 1], got {getattr(self, name)}")
        if self.comments_per_painting < 1:
            raise ConfigError("emotion_synthetic: comments_per_painting must be >= 1")
        if self.cue_words_per_class < 1 or self.cues_per_comment < 1:
            raise ConfigError("emotion_synthetic: cue_words_per_class and cues_per_comment must be >= 1")
        if not 0 <= self.min_fillers <= self.max_fillers or self.filler_words < 1:
            raise ConfigError("emotion_synthetic: need 0 <= min_fillers <= max_fillers and filler_words >= 1")
        if self.image_size < 9:
            raise ConfigError(f"emotion_synthetic: image_size must be >= 9, got {self.image_size}")
        if self.image_features_dim and self.image_features_dim < 7:
            raise ConfigError(f"emotion_synthetic: image_features_dim must be 0 or >= 7, got {self.image_features_dim}")
        if self.valence_strength < 0 or self.class_strength < 0:
            raise ConfigError("emotion_synthetic: strengths must be >= 0")
        for n in (self.n_train, self.n_val, self.n_test):
            if n < len(EMOTIONS):
                raise ConfigError(f"emotion_synthetic: split size {n} is smaller than the {len(EMOTIONS)} classes")


@dataclass(frozen=True)
class _Structure:
    cue_words: tuple[tuple[str, ...], ...]  # base emotion -> its words
    fillers: tuple[str, ...]
    meaning: np.ndarray  # (languages, classes): base emotion -> emotion signalled in that language
    image_means: np.ndarray  # (classes, 3, S, S) or (classes, D)


def _group_members() -> dict[int, list[int]]:
    members: dict[int, list[int]] = {}
    for k, g in enumerate(VALENCE):
        members.setdefault(g, []).append(k)
    return members


def _meaning(num_languages: int) -> np.ndarray:
    """meaning[i, b]: the emotion that a word of base emotion b signals in language i (a shift inside its group)."""
    out = np.zeros((num_languages, len(EMOTIONS)), dtype=np.int64)
    for members in _group_members().values():
        for pos, b in enumerate(members):
            for i in range(num_languages):
                out[i, b] = members[(pos + i) % len(members)]
    return out


def _pseudo_words(rng: np.random.Generator, n: int) -> list[str]:
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < n:
        syllables = rng.integers(2, 4)
        w = "".join(rng.choice(list(_CONSONANTS)) + rng.choice(list(_VOWELS)) for _ in range(syllables))
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


def _image_means(spec: EmotionSyntheticSpec, rng: np.random.Generator) -> np.ndarray:
    """(classes, 3, S, S) pixel means, or (classes, D) feature means with ``image_features_dim`` = D."""
    s = spec.image_size
    rows = np.arange(s)
    # seven orthonormal patterns: one flat colour per valence group, then stripes of frequency 1-4
    patterns = np.zeros((7, 3, s, s))
    for g in range(3):
        patterns[g, g] = 1.0 / s
    for f in range(4):
        stripes = np.cos(2 * np.pi * (f + 1) * rows / s)[None, :, None] * np.ones((3, s, s))
        patterns[3 + f] = stripes / np.linalg.norm(stripes)
    coef = np.zeros((len(EMOTIONS), 7))
    for members in _group_members().values():
        for pos, k in enumerate(members):
            # two groups (two emotions of a group) differ by valence_strength (class_strength) in total
            coef[k, VALENCE[k]] = spec.valence_strength / np.sqrt(2.0)
            coef[k, 3 + pos] = spec.class_strength / np.sqrt(2.0)
    if spec.image_features_dim:
        # the same Gaussian model in a random orthonormal frame of D dims: a stand-in for CLIP-like features
        basis, _ = np.linalg.qr(rng.standard_normal((spec.image_features_dim, 7)))
        return coef @ basis.T
    return np.einsum("kp,pchw->kchw", coef, patterns)


@functools.lru_cache(maxsize=16)
def _structure(spec: EmotionSyntheticSpec) -> _Structure:
    rng = np.random.default_rng([spec.structure_seed, 104729])
    k = spec.cue_words_per_class
    words = _pseudo_words(rng, len(EMOTIONS) * k + spec.filler_words)
    cues = tuple(tuple(words[c * k : (c + 1) * k]) for c in range(len(EMOTIONS)))
    fillers = tuple(words[len(EMOTIONS) * k :])
    return _Structure(cues, fillers, _meaning(len(spec.languages)), _image_means(spec, rng))


@dataclass
class _Draw:
    labels: np.ndarray  # the annotators' emotions
    painting: np.ndarray  # painting index per comment
    dominant: np.ndarray  # dominant emotion per painting
    language: np.ndarray  # language index per comment
    cue_base: np.ndarray  # (n, cues_per_comment) base emotion of each cue word
    utterances: list[str]
    images: np.ndarray  # one per painting


def _draw(spec: EmotionSyntheticSpec, st: _Structure, n: int, rng: np.random.Generator, words: bool = True) -> _Draw:
    k, c = len(EMOTIONS), spec.cues_per_comment
    num_paintings = -(-n // spec.comments_per_painting)
    dominant = np.arange(num_paintings) % k  # balanced dominant emotions
    rng.shuffle(dominant)
    painting = np.arange(n) // spec.comments_per_painting
    agree = rng.random(n) < spec.agreement
    labels = np.where(agree, dominant[painting], rng.integers(0, k, n))
    language = rng.integers(0, len(spec.languages), n)
    # the base emotion whose words signal the label in the comment's language
    true_base = np.argsort(st.meaning, axis=1)[language, labels]
    noisy = rng.random((n, c)) < spec.text_noise
    cue_base = np.where(noisy, rng.integers(0, k, (n, c)), true_base[:, None])
    word_pick = rng.integers(0, spec.cue_words_per_class, (n, c))
    utterances = []
    for i in range(n if words else 0):
        tokens = list(rng.choice(st.fillers, rng.integers(spec.min_fillers, spec.max_fillers + 1)))
        for j in range(c):
            tokens.insert(int(rng.integers(0, len(tokens) + 1)), st.cue_words[cue_base[i, j]][word_pick[i, j]])
        utterances.append(" ".join(tokens))
    images = st.image_means[dominant] + rng.standard_normal((num_paintings, *st.image_means.shape[1:]))
    return _Draw(labels, painting, dominant, language, cue_base, utterances, images.astype(np.float32))


def _log_posteriors(spec: EmotionSyntheticSpec, st: _Structure, d: _Draw) -> dict[str, np.ndarray]:
    """(n, classes) log p(y | .) up to a per-row constant, for each view of a comment."""
    k, eps = len(EMOTIONS), spec.text_noise
    emotions = np.arange(k)[None, None, :]

    def text_loglik(signalled: np.ndarray) -> np.ndarray:
        # p(cue | y) is proportional to (1 - eps) [cue signals y] + eps / K
        return np.log((1 - eps) * (signalled[:, :, None] == emotions) + eps / k).sum(1)

    with_lang = text_loglik(st.meaning[d.language[:, None], d.cue_base])
    per_lang = np.stack([text_loglik(st.meaning[i][d.cue_base]) for i in range(len(spec.languages))])
    top = per_lang.max(0)
    without_lang = top + np.log(np.exp(per_lang - top).mean(0))
    # p(dominant | image) from -|x - mu|^2 / 2, then p(y | image) = agreement p(y | image) + (1 - agreement) / K
    means = st.image_means.reshape(k, -1)
    loglik = d.images.reshape(len(d.images), -1).astype(np.float64) @ means.T - 0.5 * (means**2).sum(1)
    p_dom = np.exp(loglik - loglik.max(1, keepdims=True))
    p_dom /= p_dom.sum(1, keepdims=True)
    image = np.log(spec.agreement * p_dom + (1 - spec.agreement) / k)[d.painting]
    return {
        "text_with_language": with_lang,
        "text_without_language": without_lang,
        "image": image,
        "all_with_language": with_lang + image,
        "all_without_language": without_lang + image,
    }


@functools.lru_cache(maxsize=16)
def bayes_accuracy(spec: EmotionSyntheticSpec, n_samples: int = BAYES_MC_SAMPLES) -> dict[str, dict[str, float]]:
    """Bayes-optimal accuracies of text (with/without language), image, and both, by Monte Carlo."""
    st = _structure(spec)
    rng = np.random.default_rng([spec.structure_seed, 7919])
    d = _draw(spec, st, n_samples, rng, words=False)
    out = {}
    for name, values in _log_posteriors(spec, st, d).items():
        # ties are broken at random, so that the estimate is the accuracy of a Bayes classifier
        noise = rng.random(values.shape) * 1e-9
        correct = ((values + noise).argmax(1) == d.labels).astype(float)
        out[name] = {"accuracy": float(correct.mean()), "stderr": float(correct.std(ddof=1) / np.sqrt(n_samples))}
    return out


def generate(
    spec: EmotionSyntheticSpec,
    seed: int = 0,
    prompt: str = DEFAULT_PROMPT,
    tokenizer: str = "vocab",
    max_length: int = DEFAULT_MAX_LENGTH,
) -> DatasetSplits:
    """Draw the train/val/test splits of ``spec`` with sample seed ``seed``, prompted and tokenised."""
    st = _structure(spec)
    languages = np.array([canonical_language(lang) for lang in spec.languages])
    draws = {}
    for i, (split, n) in enumerate((("train", spec.n_train), ("val", spec.n_val), ("test", spec.n_test))):
        draws[split] = _draw(spec, st, n, np.random.default_rng([spec.structure_seed, seed, i]))
    texts = {s: apply_prompt(prompt, d.utterances, languages[d.language], EMOTIONS) for s, d in draws.items()}
    ids, tok = tokenize_splits(texts, tokenizer=tokenizer, max_length=max_length)
    splits = {
        s: MultimodalDataset(
            {"text": ids[s], "image": torch.from_numpy(d.images[d.painting])},
            torch.from_numpy(d.labels),
            EMOTIONS,
            name=f"emotion_synthetic/{s}",
            meta={
                "language": languages[d.language],
                "painting": np.array([f"{s}-{p}" for p in d.painting], dtype=object),
                "utterance": np.array(d.utterances, dtype=object),
            },
        )
        for s, d in draws.items()
    }
    bayes = bayes_accuracy(spec)
    info = {
        "description": "image + comment emotions; the language changes what the cue words mean",
        "prompt": prompt,
        "tokenizer": tok.describe(),
        # the from-scratch text encoder needs the size of the vocabulary built here
        "encoder_defaults": {"text": {"text": {"vocab_size": tok.vocab_size}}},
        "max_length": max_length,
        "split_rule": "by painting",
        **bayes_info(bayes, f"Monte Carlo, accuracy of the Bayes classifier over {BAYES_MC_SAMPLES} comments"),
        "spec": asdict(spec),
        "seed": seed,
    }
    return DatasetSplits(splits["train"], splits["val"], splits["test"], info=info)


def load_emotion_synthetic(
    seed: int = 0,
    prompt: str = DEFAULT_PROMPT,
    tokenizer: str = "vocab",
    max_length: int = DEFAULT_MAX_LENGTH,
    n_train: int | None = None,
    n_val: int | None = None,
    n_test: int | None = None,
    text_noise: float | None = None,
    image_features_dim: int | None = None,
    spec: EmotionSyntheticSpec | None = None,
) -> DatasetSplits:
    """Load the task (default spec, or ``spec``) with some fields overridden.

    ``prompt="none"`` is the no-prompt ablation; ``image_features_dim=D`` gives D-dimensional image features
    instead of pixel images (see EmotionSyntheticSpec for the other fields).
    """
    spec = spec or EmotionSyntheticSpec()
    overrides = {
        "n_train": n_train,
        "n_val": n_val,
        "n_test": n_test,
        "text_noise": text_noise,
        "image_features_dim": image_features_dim,
    }
    changes = {k: v for k, v in overrides.items() if v is not None}
    return generate(replace(spec, **changes) if changes else spec, seed, prompt, tokenizer, max_length)


def describe() -> list[dict[str, object]]:
    """The ``dus datasets`` row of the default spec, without generating the data."""
    spec = EmotionSyntheticSpec()
    image = f"[{spec.image_features_dim}]" if spec.image_features_dim else f"[3, {spec.image_size}, {spec.image_size}]"
    return [
        {
            "dataset": "emotion_synthetic",
            "modalities": f"text[{DEFAULT_MAX_LENGTH}] (token ids), image{image}",
            "classes": len(EMOTIONS),
            "train/val/test": f"{spec.n_train}/{spec.n_val}/{spec.n_test}",
        }
    ]


__all__ = ["EmotionSyntheticSpec", "bayes_accuracy", "describe", "generate", "load_emotion_synthetic"]
