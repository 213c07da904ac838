"""The Linear layer of every model here: ``nn.Linear``, with a fast batched form for the run axis.

Outside a vectorised step it is exactly ``nn.Linear`` (``F.linear``). Inside one (``core.TrainingCore`` runs K runs
under ``torch.func.vmap``; ``vectorised()`` is then on), it calls the custom operator ``dus::linear``, whose vmap
rule is one ``torch.baddbmm`` over the runs. The run stack keeps Linear weights as (K, in, out) tensors and gives
each run the transposed view (out, in); the rule then multiplies by the contiguous (K, in, out) tensor, and
autograd's weight gradient x^T g comes out in the same layout, so nothing is copied. ``vmap``'s own rule for
``F.linear`` on (K, out, in) weights ran the DUS-v1 MLP about half as fast (``run_stack.py`` has the numbers).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_VECTORISED: ContextVar[bool] = ContextVar("dus_vectorised", default=False)


@contextlib.contextmanager
def vectorised() -> Iterator[None]:
    """Within this block the Linear layers take their batched form (only inside ``torch.func.vmap``)."""
    token = _VECTORISED.set(True)
    try:
        yield
    finally:
        _VECTORISED.reset(token)


def is_vectorised() -> bool:
    """Whether a vectorised step is running (layers must not read tensor values: they are batched)."""
    return _VECTORISED.get()


@torch.library.custom_op("dus::linear", mutates_args=())
def batched_linear(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``F.linear``; exists for its vmap rule (see the module docstring)."""
    return F.linear(x, weight, bias)


@batched_linear.register_fake
def _(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    return x.new_empty((*x.shape[:-1], weight.shape[0]))


@batched_linear.register_vmap
def _batched_linear_vmap(info, in_dims, x: Tensor, weight: Tensor, bias: Tensor) -> tuple[Tensor, int]:
    runs = info.batch_size
    x_dim, w_dim, b_dim = in_dims
    x = x.movedim(x_dim, 0) if x_dim is not None else x.expand(runs, *x.shape)
    weight = weight.movedim(w_dim, 0) if w_dim is not None else weight.expand(runs, *weight.shape)
    bias = bias.movedim(b_dim, 0) if b_dim is not None else bias.expand(runs, *bias.shape)
    rows = x.shape[1:-1]
    out = torch.baddbmm(bias.unsqueeze(1), x.reshape(runs, -1, x.shape[-1]), weight.transpose(1, 2))
    return out.reshape(runs, *rows, weight.shape[1]), 0


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters, initialisation and results) with the batched form of the run axis."""

    def forward(self, x: Tensor) -> Tensor:
        if _VECTORISED.get() and self.bias is not None:
            return batched_linear(x, self.weight, self.bias)
        return F.linear(x, self.weight, self.bias)


def is_linear_weight(module: nn.Module, attr: str) -> bool:
    """Whether ``module.attr`` is the weight of a Linear layer (kept as (in, out) per run on the run stack)."""
    return isinstance(module, Linear) and attr == "weight"
