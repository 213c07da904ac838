"""mml_backbones: the multimodal training core (data, encoders, fusion, methods, the Trainer, metrics).

It imports nothing from dus_env, agents, gymnasium or stable-baselines3. Names are imported on first use, so
that the command line (``dus --help``) and the config dataclasses load without torch.
"""

from __future__ import annotations

from mml_backbones.lazy import lazy_getattr

__version__ = "0.1.0"

_EXPORTS = {
    "DUSController": "mml_backbones.controller",
    "nested_prefixes": "mml_backbones.controller",
    "true_class_score": "mml_backbones.controller",
    "unimodal_losses": "mml_backbones.controller",
    "DatasetSplits": "mml_backbones.data.dataset",
    "MultimodalDataset": "mml_backbones.data.dataset",
    "list_datasets": "mml_backbones.data.registry",
    "load_dataset": "mml_backbones.data.registry",
    "FitResult": "mml_backbones.fit",
    "METHODS": "mml_backbones.methods",
    "Method": "mml_backbones.methods.base",
    "build_method": "mml_backbones.methods",
    "method_config": "mml_backbones.methods",
    "ModelConfig": "mml_backbones.model_config",
    "MultimodalModel": "mml_backbones.models.model",
    "build_model": "mml_backbones.models.model",
    "DiscrepancyObservation": "mml_backbones.observation",
    "OptimConfig": "mml_backbones.optim",
    "QuantityBounds": "mml_backbones.quantities",
    "allocate": "mml_backbones.quantities",
    "validate_quantities": "mml_backbones.quantities",
    "Sampler": "mml_backbones.samplers",
    "UniformSampler": "mml_backbones.samplers",
    "make_sampler": "mml_backbones.samplers",
    "StatisticsConfig": "mml_backbones.statistics",
    "Trainer": "mml_backbones.trainer",
    "TrainerConfig": "mml_backbones.trainer_config",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
