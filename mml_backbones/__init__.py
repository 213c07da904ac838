"""mml_backbones: the multimodal training core (data, encoders, fusion, methods, the Trainer, metrics).

It imports nothing from dus_env, agents, gymnasium or stable-baselines3.
"""

from mml_backbones.controller import DUSController, nested_prefixes, true_class_score, unimodal_losses
from mml_backbones.data import DatasetSplits, MultimodalDataset, list_datasets, load_dataset
from mml_backbones.fit import FitResult
from mml_backbones.methods import METHODS, Method, build_method, method_config
from mml_backbones.models import ModelConfig, MultimodalModel, build_model
from mml_backbones.observation import DiscrepancyObservation
from mml_backbones.optim import OptimConfig
from mml_backbones.quantities import QuantityBounds, allocate, validate_quantities
from mml_backbones.samplers import Sampler, UniformSampler, make_sampler
from mml_backbones.statistics import StatisticsConfig
from mml_backbones.trainer import Trainer
from mml_backbones.trainer_config import TrainerConfig

__version__ = "0.1.0"

__all__ = [
    "METHODS",
    "DUSController",
    "DatasetSplits",
    "DiscrepancyObservation",
    "FitResult",
    "Method",
    "ModelConfig",
    "MultimodalDataset",
    "MultimodalModel",
    "OptimConfig",
    "QuantityBounds",
    "Sampler",
    "StatisticsConfig",
    "Trainer",
    "TrainerConfig",
    "UniformSampler",
    "allocate",
    "build_method",
    "build_model",
    "list_datasets",
    "load_dataset",
    "make_sampler",
    "method_config",
    "nested_prefixes",
    "true_class_score",
    "unimodal_losses",
    "validate_quantities",
]
