"""Synthetic M-modality classification whose imbalance and complementarity are set by construction.

Each modality m sees the class y through a coarse grouping ``groups[y]`` and, optionally, a fine per-class
signal: the latent mean of class y is ``strength * u[groups[y]] + fine_strength * v[y]`` with orthonormal
directions u (one per group) and v (one per class) scaled so that ``strength`` and ``fine_strength`` are the
distances between two groups' and two classes' parts. With ``fine_strength = 0`` a modality cannot tell the
classes of a group apart at all. Unit Gaussian noise is added, pure-noise dimensions are appended, a random
rotation mixes all of them and an optional elementwise warp ``z + warp * tanh(z)`` (strictly increasing, so
invertible) bends the class boundaries. Rotation and warp are
invertible, so the Bayes-optimal accuracy is that of the latent Gaussian model; it is computed by Monte Carlo
as E[max_y p(y | x)] over fresh latent draws, with its standard error.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
import torch

from mml_backbones.data.dataset import DatasetSplits, MultimodalDataset
from mml_backbones.errors import ConfigError

BAYES_MC_SAMPLES = 400_000


@dataclass(frozen=True)
class SyntheticModality:
    """One modality of the generator.

    Attributes:
        name: modality name.
        groups: class -> group id; the coarse structure this modality sees.
        strength: distance between the group parts of the means, in units of the noise std.
        fine_strength: distance between the per-class parts of the means (0: classes of a group coincide).
        noise_dims: appended pure-noise dimensions.
        warp: strength of the invertible elementwise warp (0 keeps the data Gaussian).
    """

    name: str
    groups: tuple[int, ...]
    strength: float
    fine_strength: float = 0.0
    noise_dims: int = 24
    warp: float = 0.5

    @property
    def num_groups(self) -> int:
        """Distinct groups (what this modality can tell apart)."""
        return len(set(self.groups))

    @property
    def informative_dims(self) -> int:
        """Latent dimensions that carry the class means."""
        return self.num_groups + (len(self.groups) if self.fine_strength > 0 else 0)

    @property
    def dim(self) -> int:
        """Observed feature dimension."""
        return self.informative_dims + self.noise_dims


@dataclass(frozen=True)
class SyntheticSpec:
    """A synthetic task: classes, modalities and split sizes.

    Attributes:
        num_classes: number of classes (uniform prior).
        modalities: the modalities, in order.
        n_train, n_val, n_test: split sizes.
        structure_seed: seed of the means, rotations (the distribution); ``seed`` in load_synthetic draws samples.
        description: one line for listings.
    """

    num_classes: int
    modalities: tuple[SyntheticModality, ...]
    n_train: int = 6000
    n_val: int = 2000
    n_test: int = 10000
    structure_seed: int = 0
    description: str = ""

    def __post_init__(self) -> None:
        if self.num_classes < 2:
            raise ConfigError("synthetic: num_classes must be >= 2")
        if not self.modalities:
            raise ConfigError("synthetic: at least one modality is needed")
        names = [m.name for m in self.modalities]
        if len(set(names)) != len(names):
            raise ConfigError(f"synthetic: duplicate modality names {names}")
        for m in self.modalities:
            if len(m.groups) != self.num_classes:
                raise ConfigError(
                    f"synthetic: modality {m.name!r} has {len(m.groups)} group ids for {self.num_classes} classes"
                )
            if m.strength < 0 or m.fine_strength < 0:
                raise ConfigError(f"synthetic: modality {m.name!r} has a negative strength")
        for n in (self.n_train, self.n_val, self.n_test):
            if n < self.num_classes:
                raise ConfigError(f"synthetic: split size {n} is smaller than the number of classes")


# Class k of the 8-class presets has pair k // 2 and quarter k % 4.
PAIRS8 = (0, 0, 1, 1, 2, 2, 3, 3)
QUARTERS8 = (0, 1, 2, 3, 0, 1, 2, 3)
ALL8 = tuple(range(8))

# The weak modality's signal sits in a few of many dimensions: a random (untrained) encoder hides it from a
# linear probe, so its probe accuracy measures how much training it got. The strong one is clean and coarse:
# it is learned first and, trained jointly, takes over (the imbalance), while the weak one still holds the
# within-pair information that joint use needs to approach the Bayes accuracy.
PRESETS: dict[str, SyntheticSpec] = {
    "mild": SyntheticSpec(
        num_classes=8,
        modalities=(
            SyntheticModality("strong", PAIRS8, strength=5.0, fine_strength=1.5),
            SyntheticModality("weak", ALL8, strength=2.0, noise_dims=200),
        ),
        description="strong: clean class pairs, faint within pairs; weak: all classes, faint, in 200 noise dims",
    ),
    "strong": SyntheticSpec(
        num_classes=8,
        modalities=(
            SyntheticModality("strong", PAIRS8, strength=5.0, fine_strength=2.0),
            SyntheticModality("weak", ALL8, strength=2.0, noise_dims=400),
        ),
        description="as mild with a better strong modality and the weak one hidden in 400 noise dims",
    ),
    "three_modal": SyntheticSpec(
        num_classes=8,
        modalities=(
            SyntheticModality("strong", PAIRS8, strength=5.0, fine_strength=1.5),
            SyntheticModality("weak", ALL8, strength=1.6, noise_dims=200),
            SyntheticModality("medium", QUARTERS8, strength=2.5, fine_strength=1.0, noise_dims=100),
        ),
        description="strong tells pairs, medium quarters (both faint within), weak all classes in 200 noise dims",
    ),
    "balanced": SyntheticSpec(
        num_classes=8,
        modalities=(
            SyntheticModality("a", ALL8, strength=2.5, noise_dims=100),
            SyntheticModality("b", ALL8, strength=2.5, noise_dims=100),
        ),
        description="two equally informative modalities (a control with no imbalance)",
    ),
}


@dataclass
class _Structure:
    means: list[np.ndarray]  # per modality: (num_classes, informative_dims)
    rotations: list[np.ndarray]  # per modality: (dim, dim) orthogonal


def _group_index(m: SyntheticModality) -> np.ndarray:
    order = {g: i for i, g in enumerate(dict.fromkeys(m.groups))}
    return np.array([order[g] for g in m.groups])


def _structure(spec: SyntheticSpec) -> _Structure:
    rng = np.random.default_rng(spec.structure_seed)
    means, rotations = [], []
    for m in spec.modalities:
        # Orthonormal directions, so every two groups (classes) differ by exactly strength (fine_strength).
        q, _ = np.linalg.qr(rng.standard_normal((m.informative_dims, m.informative_dims)))
        coarse = q[:, : m.num_groups].T * (m.strength / np.sqrt(2.0))
        mu = coarse[_group_index(m)]
        if m.fine_strength > 0:
            mu = mu + q[:, m.num_groups :].T * (m.fine_strength / np.sqrt(2.0))
        means.append(mu)
        r, _ = np.linalg.qr(rng.standard_normal((m.dim, m.dim)))
        rotations.append(r)
    return _Structure(means, rotations)


def _latent(spec: SyntheticSpec, st: _Structure, labels: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    return [
        mu[labels] + rng.standard_normal((len(labels), m.informative_dims)) for m, mu in zip(spec.modalities, st.means)
    ]


def _observe(m: SyntheticModality, rotation: np.ndarray, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    full = np.concatenate([z, rng.standard_normal((len(z), m.noise_dims))], axis=1) @ rotation.T
    return full + m.warp * np.tanh(full)


def _log_likelihoods(spec: SyntheticSpec, st: _Structure, latents: list[np.ndarray]) -> list[np.ndarray]:
    """Per modality, log p(z_m | y) up to a constant, shape (n, num_classes)."""
    out = []
    for mu, z in zip(st.means, latents):
        out.append(-0.5 * ((z[:, None, :] - mu[None, :, :]) ** 2).sum(-1))
    return out


def _max_posterior(loglik: np.ndarray) -> np.ndarray:
    p = np.exp(loglik - loglik.max(1, keepdims=True))
    return p.max(1) / p.sum(1)


@functools.lru_cache(maxsize=32)
def bayes_accuracy(spec: SyntheticSpec, n_samples: int = BAYES_MC_SAMPLES) -> dict[str, dict[str, float]]:
    """Bayes-optimal accuracy of each modality alone and of all together, by Monte Carlo with its std error."""
    st = _structure(spec)
    rng = np.random.default_rng([spec.structure_seed, 7919])
    labels = rng.integers(0, spec.num_classes, n_samples)
    ll = _log_likelihoods(spec, st, _latent(spec, st, labels, rng))
    result: dict[str, dict[str, float]] = {}
    for m, l_m in zip(spec.modalities, ll):
        result[m.name] = _estimate(_max_posterior(l_m))
    result["all"] = _estimate(_max_posterior(np.sum(ll, axis=0)))
    return result


def bayes_info(bayes: dict[str, dict[str, float]], method: str) -> dict[str, object]:
    """The ``DatasetSplits.info`` entries of Monte-Carlo Bayes accuracies (accuracy, standard error, method)."""
    return {
        "bayes_accuracy": {k: v["accuracy"] for k, v in bayes.items()},
        "bayes_stderr": {k: v["stderr"] for k, v in bayes.items()},
        "bayes_method": method,
    }


def _estimate(values: np.ndarray) -> dict[str, float]:
    return {"accuracy": float(values.mean()), "stderr": float(values.std(ddof=1) / np.sqrt(len(values)))}


def generate(spec: SyntheticSpec, seed: int = 0, bayes_samples: int = BAYES_MC_SAMPLES) -> DatasetSplits:
    """Draw train/val/test splits from ``spec`` with sample seed ``seed`` (Bayes accuracy from ``bayes_samples``)."""
    st = _structure(spec)
    class_names = tuple(f"class_{k}" for k in range(spec.num_classes))
    splits = {}
    for i, (split, n) in enumerate((("train", spec.n_train), ("val", spec.n_val), ("test", spec.n_test))):
        rng = np.random.default_rng([spec.structure_seed, seed, i])
        labels = np.arange(n) % spec.num_classes  # balanced classes
        rng.shuffle(labels)
        latents = _latent(spec, st, labels, rng)
        mods = {
            m.name: torch.from_numpy(_observe(m, r, z, rng).astype(np.float32))
            for m, r, z in zip(spec.modalities, st.rotations, latents)
        }
        splits[split] = MultimodalDataset(mods, torch.from_numpy(labels), class_names, name=f"synthetic/{split}")
    info = {
        "description": spec.description,
        **bayes_info(
            bayes_accuracy(spec, bayes_samples), f"Monte Carlo, E[max_y p(y|x)] over {bayes_samples} latent draws"
        ),
        "spec": asdict(spec),
        "seed": seed,
    }
    return DatasetSplits(splits["train"], splits["val"], splits["test"], info=info)


def load_synthetic(
    preset: str = "mild",
    seed: int = 0,
    n_train: int | None = None,
    n_val: int | None = None,
    n_test: int | None = None,
    spec: SyntheticSpec | dict[str, Any] | None = None,
    structure_seed: int | None = None,
    modality_options: dict[str, dict[str, Any]] | None = None,
    bayes_samples: int = BAYES_MC_SAMPLES,
) -> DatasetSplits:
    """Load a synthetic preset (or a custom ``spec``), optionally resized and varied.

    Args:
        preset: a name of ``PRESETS`` (ignored when ``spec`` is given).
        seed: the sample seed (which points are drawn); the distribution stays the same.
        n_train, n_val, n_test: split sizes replacing the spec's.
        spec: a SyntheticSpec, or a dict of its fields (``modalities`` a list of dicts of SyntheticModality
            fields), e.g. from a JSON instance file.
        structure_seed: replaces the spec's: other class means and rotations, so another distribution with the
            same strengths and sizes (what an unseen instance of a family varies).
        modality_options: modality name -> SyntheticModality fields to replace, e.g.
            ``{"weak": {"strength": 0.0}}`` (an uninformative modality).
        bayes_samples: latent draws of the Monte-Carlo Bayes accuracy (fewer: a faster load, a wider error).
    """
    if int(bayes_samples) != bayes_samples or bayes_samples < 100:
        raise ConfigError(f"synthetic bayes_samples must be an integer >= 100, got {bayes_samples!r}")
    if spec is None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown synthetic preset {preset!r}; valid: {sorted(PRESETS)}")
        spec, custom = PRESETS[preset], False
    else:
        spec, custom = spec_from_dict(spec) if isinstance(spec, dict) else spec, True
    changes: dict[str, Any] = {
        k: v for k, v in {"n_train": n_train, "n_val": n_val, "n_test": n_test}.items() if v is not None
    }
    if structure_seed is not None:
        changes["structure_seed"] = int(structure_seed)
    if modality_options:
        names = [m.name for m in spec.modalities]
        unknown = sorted(set(modality_options) - set(names))
        if unknown:
            raise ConfigError(f"synthetic modality_options name unknown modality {unknown}; modalities: {names}")
        changes["modalities"] = tuple(_replace_modality(m, modality_options.get(m.name, {})) for m in spec.modalities)
    splits = generate(replace(spec, **changes) if changes else spec, seed=seed, bayes_samples=int(bayes_samples))
    splits.info["preset"] = "custom" if custom or "modalities" in changes else preset
    return splits


def spec_from_dict(data: dict[str, Any]) -> SyntheticSpec:
    """A SyntheticSpec from a dict of its fields (``modalities``: a list of dicts of SyntheticModality fields)."""
    data = dict(data)
    mods = data.pop("modalities", None)
    if not isinstance(mods, list | tuple) or not mods:
        raise ConfigError("synthetic spec: 'modalities' must be a non-empty list of modality dicts")
    known = {f.name for f in fields(SyntheticSpec)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"synthetic spec has no field(s) {unknown}; valid: {sorted(known)}")
    return SyntheticSpec(modalities=tuple(_modality_from_dict(m) for m in mods), **data)


def _modality_from_dict(data: dict[str, Any] | SyntheticModality) -> SyntheticModality:
    if isinstance(data, SyntheticModality):
        return data
    known = {f.name for f in fields(SyntheticModality)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"synthetic modality has no field(s) {unknown}; valid: {sorted(known)}")
    return SyntheticModality(**{k: tuple(v) if k == "groups" else v for k, v in data.items()})


def _replace_modality(m: SyntheticModality, options: dict[str, Any]) -> SyntheticModality:
    known = {f.name for f in fields(SyntheticModality)} - {"name"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"synthetic modality_options[{m.name!r}] has no field(s) {unknown}; valid: {sorted(known)}")
    return replace(m, **{k: tuple(v) if k == "groups" else v for k, v in options.items()})


def describe_presets() -> list[dict[str, object]]:
    """One ``dus datasets`` row per preset, from its spec alone (no data generated, no Bayes accuracy computed)."""
    return [
        {
            "dataset": f"synthetic --preset {name}",
            "modalities": ", ".join(f"{m.name}[{m.dim}]" for m in spec.modalities),
            "classes": spec.num_classes,
            "train/val/test": f"{spec.n_train}/{spec.n_val}/{spec.n_test}",
        }
        for name, spec in PRESETS.items()
    ]


__all__ = [
    "PRESETS",
    "SyntheticModality",
    "SyntheticSpec",
    "bayes_accuracy",
    "describe_presets",
    "generate",
    "load_synthetic",
    "spec_from_dict",
]
