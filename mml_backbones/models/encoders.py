"""Unimodal encoders: MLP, 1D-CNN for time series, ResNet-18-style 2D CNN for spectrograms and frames."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from mml_backbones.errors import ConfigError
from mml_backbones.models.layers import Linear
from mml_backbones.registry import Registry

ENCODERS: Registry[type[nn.Module]] = Registry("encoder")


class Encoder(nn.Module):
    """Base class: maps a batch of one modality (B, *input_shape) to features (B, feature_dim)."""

    feature_dim: int

    def __init__(self, input_shape: Sequence[int], feature_dim: int) -> None:
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.feature_dim = int(feature_dim)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a clear error when ``x`` does not have this encoder's sample shape."""
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"{type(self).__name__} expects inputs of shape (batch, {', '.join(map(str, self.input_shape))}), "
                f"got {tuple(x.shape)}"
            )


@ENCODERS.register("mlp")
class MLPEncoder(Encoder):
    """Flatten, then Linear-ReLU layers (for feature vectors)."""

    def __init__(
        self,
        input_shape: Sequence[int],
        feature_dim: int = 128,
        hidden: Sequence[int] = (256,),
        dropout: float = 0.0,
    ) -> None:
        super().__init__(input_shape, feature_dim)
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(self.input_shape)
        for h in hidden:
            layers += [Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers += [Linear(width, feature_dim), nn.ReLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.net(x.float())


@ENCODERS.register("cnn1d")
class Conv1dEncoder(Encoder):
    """Conv1d-BatchNorm-ReLU-MaxPool blocks, global average pooling, a linear projection (channels, time)."""

    def __init__(
        self,
        input_shape: Sequence[int],
        feature_dim: int = 128,
        channels: Sequence[int] = (32, 64, 128),
        kernel_size: int = 5,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(input_shape, feature_dim)
        if len(self.input_shape) != 2:
            raise ConfigError(f"cnn1d needs inputs of shape (channels, time), got {self.input_shape}")
        if self.input_shape[1] < 2 ** len(channels):  # each block halves the time axis; none may reach 0
            raise ConfigError(
                f"cnn1d needs at least {2 ** len(channels)} time steps for its {len(channels)} pooling blocks, got "
                f"input shape {self.input_shape}"
            )
        layers: list[nn.Module] = []
        c_in = self.input_shape[0]
        for c in channels:
            layers += [
                nn.Conv1d(c_in, c, kernel_size, padding=kernel_size // 2, bias=False),
                nn.BatchNorm1d(c),
                nn.ReLU(),
                nn.MaxPool1d(2),
            ]
            c_in = c
        self.body = nn.Sequential(*layers)
        self.proj = nn.Sequential(nn.Dropout(dropout), Linear(c_in, feature_dim), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.proj(self.body(x.float()).mean(-1))


class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
            if stride != 1 or c_in != c_out
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


@ENCODERS.register("resnet2d")
class ResNet2dEncoder(Encoder):
    """ResNet-18-style 2D CNN (BasicBlocks 2-2-2-2 by default) for (C, H, W) images or spectrograms.

    Inputs of shape (T, C, H, W) are clips of T frames: frames are encoded one by one and their pooled features
    averaged, as OGM-GE and BalanceBenchmark do for the visual stream. ``width`` 64 and ``blocks`` (2, 2, 2, 2)
    give the ResNet-18 body; the defaults are narrower so that CPU runs stay practical.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        feature_dim: int = 128,
        width: int = 16,
        blocks: Sequence[int] = (2, 2, 2, 2),
        stem_stride: int = 2,
    ) -> None:
        super().__init__(input_shape, feature_dim)
        if len(self.input_shape) not in (3, 4):
            raise ConfigError(f"resnet2d needs (C, H, W) or (T, C, H, W) inputs, got {self.input_shape}")
        channels = self.input_shape[-3]
        self.stem = nn.Sequential(
            nn.Conv2d(channels, width, 7, stem_stride, 3, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
        )
        stages: list[nn.Module] = []
        c_in = width
        for i, n in enumerate(blocks):
            c_out = width * 2**i
            for j in range(n):
                stages.append(_BasicBlock(c_in, c_out, 2 if (j == 0 and i > 0) else 1))
                c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.proj = nn.Sequential(Linear(c_in, feature_dim), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = x.float()
        frames = x.shape[1] if x.ndim == 5 else 1
        if x.ndim == 5:
            x = x.flatten(0, 1)
        h = self.stages(self.stem(x)).mean(dim=(-2, -1))
        if frames > 1:
            h = h.view(-1, frames, h.shape[-1]).mean(1)
        return self.proj(h)


def default_encoder_name(input_shape: Sequence[int], dtype: torch.dtype = torch.float32) -> str:
    """The encoder used for a modality when none is named: by dtype and number of sample axes."""
    if dtype in (torch.int64, torch.int32) and "text" in ENCODERS:
        return "text"
    return {1: "mlp", 2: "cnn1d", 3: "resnet2d", 4: "resnet2d"}.get(len(input_shape), "mlp")


def build_encoder(name: str, input_shape: Sequence[int], feature_dim: int, **options: Any) -> Encoder:
    """Instantiate the registered encoder ``name`` for samples of ``input_shape``."""
    cls = ENCODERS.get(name)
    try:
        return cls(input_shape, feature_dim=feature_dim, **options)
    except TypeError as e:
        raise ConfigError(f"encoder {name!r}: bad options {sorted(options)}: {e}") from e
