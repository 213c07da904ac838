"""K models of one architecture on stacked tensors: the run axis of the training core.

Each parameter and buffer of the K models becomes one tensor with a leading run axis, ``(K, *shape)``: the stacked
parameters are the leaves the optimiser steps, and their ``.grad`` is one ``(K, *shape)`` tensor. Every run keeps
an ordinary ``nn.Module`` (``stack.models[k]``) whose parameters and buffers are aliases of row k of the stack: the
same memory, so an optimiser step on the stack moves every run's module, a BatchNorm update in run k's module
writes row k of the stacked buffer, and the gradient a run's module receives lands in row k of the stacked
gradient (each alias's ``.grad`` is bound to that row before the backward pass; a method that replaces a
``.grad`` is copied back by ``sync_grads``). So one model definition serves both ways of computing an iteration:

- per run: run k's method calls run k's module, exactly the computation a run alone does (bit for bit: the module
  is the same ``nn.Module`` class on a contiguous row of the stack, and the optimiser's update is elementwise);
- all runs at once: ``torch.func.functional_call`` of the same module on the stacked tensors under ``torch.func.vmap``
  (``vmap``): one batched matmul per layer for every run, convolutions and BatchNorm included.

Measured on DUS-v1's MLP shapes (one thread, K = 64 runs of B = 64; ``python -m benchmarks.throughput --layers``):
hand-written batched layers over ``baddbmm`` with weights stored as (K, in, out) ran 797 run-iterations/s, ``vmap``
over the model 539, one module per run in a loop 309. The hand-written layers are faster on MLPs because bmm's
gradient comes out in their layout; they would define the model a second time (the old ``BatchedTrainer`` did), and
do not cover convolutions, BatchNorm or attention, so the core uses ``vmap`` over the one definition.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap

from mml_backbones.errors import ConfigError
from mml_backbones.models.layers import is_linear_weight, vectorised


def _owner(module: nn.Module, name: str) -> tuple[nn.Module, str]:
    """The submodule holding the parameter or buffer ``name`` and its attribute name."""
    path, _, attr = name.rpartition(".")
    return (module.get_submodule(path) if path else module), attr


class _Call(nn.Module):
    """Calls ``fn(model, *args)``, so that ``functional_call`` can swap the model's tensors for the stacked ones."""

    def __init__(self, model: nn.Module, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.model = model
        self.fn = fn

    def forward(self, *args: Any) -> Any:
        return self.fn(self.model, *args)


class RunStack:
    """The parameters and buffers of K models of one architecture, stacked along a leading run axis.

    Args:
        models: the K runs' models, each built by its own run (its own initial weights); they must have the same
            parameter and buffer names and shapes. They are modified in place: afterwards their parameters and
            buffers are aliases of the stack's rows.
        transpose_linear: keep the weights of ``layers.Linear`` as (K, in, out) (the batched Linear's fast layout,
            see ``models/layers.py``; each run's weight is then the transposed view of its row). Off, every tensor
            keeps its own layout, so each run's module holds contiguous tensors exactly like a run alone.
    """

    def __init__(self, models: Sequence[nn.Module], transpose_linear: bool = False) -> None:
        if not models:
            raise ConfigError("a run stack needs at least one model")
        self.models = list(models)
        self.num_runs = len(self.models)
        first = self.models[0]
        names = [n for n, _ in first.named_parameters()]
        buffer_names = [n for n, b in first.named_buffers() if b is not None]
        for k, model in enumerate(self.models[1:], 1):
            theirs = {n: tuple(p.shape) for n, p in model.named_parameters()}
            mine = {n: tuple(p.shape) for n, p in first.named_parameters()}
            if theirs != mine:
                differ = sorted(set(theirs.items()) ^ set(mine.items()))[:4]
                raise ConfigError(f"the runs of one batch must share the model's shapes; run {k} differs at {differ}")
        #: parameters stored as (K, in, out): each run's tensor is the transposed view of its row
        self.transposed = {n for n in names if transpose_linear and is_linear_weight(*_owner(first, n))}
        self.params: dict[str, torch.Tensor] = {}
        for n in names:
            stacked = torch.stack([m.get_parameter(n).detach() for m in self.models])
            if n in self.transposed:
                stacked = stacked.transpose(1, 2).contiguous()
            self.params[n] = stacked.requires_grad_(first.get_parameter(n).requires_grad)
        self.buffers: dict[str, torch.Tensor] = {
            n: torch.stack([m.get_buffer(n) for m in self.models]) for n in buffer_names
        }
        self._aliases: list[dict[str, nn.Parameter]] = []
        for k, model in enumerate(self.models):
            aliases: dict[str, nn.Parameter] = {}
            for n, p in model.named_parameters(remove_duplicate=False):
                key = next(name for name in names if model.get_parameter(name) is p)
                if key not in aliases:
                    aliases[key] = nn.Parameter(self._row(key, self.params[key].data, k), requires_grad=p.requires_grad)
                owner, attr = _owner(model, n)
                owner._parameters[attr] = aliases[key]
            for n in buffer_names:
                owner, attr = _owner(model, n)
                owner._buffers[attr] = self.buffers[n][k]
            self._aliases.append(aliases)

    # ---------------------------------------------------------------------------------------------- gradients
    def trainable(self) -> list[torch.Tensor]:
        """The stacked parameters that train, in the model's parameter order."""
        return [p for p in self.params.values() if p.requires_grad]

    def clear_grads(self) -> None:
        """Drop the stacked gradients (the next backward through ``vmap`` creates them)."""
        for p in self.params.values():
            p.grad = None

    def clear_run_grads(self) -> None:
        """Drop every run's gradients (the next backward through the runs' modules creates them)."""
        for aliases in self._aliases:
            for a in aliases.values():
                a.grad = None

    def bind_row_grads(self) -> None:
        """Make every run's ``.grad`` the row of the stacked gradient (so per-run clipping or steps see it)."""
        for name, p in self.params.items():
            if p.grad is None:
                continue
            for k, aliases in enumerate(self._aliases):
                aliases[name].grad = self._row(name, p.grad, k)

    def gather_run_grads(self) -> None:
        """Stack the runs' gradients into the stacked ones (None where no run has one), then bind the rows.

        A parameter that some runs gave a gradient and others not cannot share one optimiser step (a run alone
        would skip it): that is an error, and such methods train with one optimiser per run.
        """
        for name, p in self.params.items():
            grads = [aliases[name].grad for aliases in self._aliases]
            missing = [g is None for g in grads]
            if all(missing):
                p.grad = None
                continue
            if any(missing):
                raise RuntimeError(f"parameter {name!r} has a gradient in some runs only; use one optimiser per run")
            stacked = torch.stack(grads)
            p.grad = stacked.transpose(1, 2).contiguous() if name in self.transposed else stacked
        self.bind_row_grads()

    def _row(self, name: str, stacked: torch.Tensor, k: int) -> torch.Tensor:
        """Row k of a stacked tensor of parameter ``name`` in the run's own layout."""
        return stacked[k].t() if name in self.transposed else stacked[k]

    def run_parameters(self, k: int) -> dict[str, nn.Parameter]:
        """Run k's parameters (aliases of row k), by name."""
        return dict(self._aliases[k])

    # ------------------------------------------------------------------------------------------------ compute
    def vmap(self, fn: Callable[..., Any], *args: Any, in_dims: Sequence[int | None] | None = None) -> Any:
        """``fn(model, *args_k)`` for every run k at once, on the stacked tensors (outputs get a leading run axis).

        ``args`` carry the run axis first (``in_dims`` 0) unless their entry of ``in_dims`` is None (shared by every
        run). Random operations inside ``fn`` are an error: a run's randomness comes from its own generator, which a
        batched call cannot draw from.
        """
        dims = tuple(in_dims) if in_dims is not None else (0,) * len(args)
        call = _Call(self.models[0], fn)
        params = {f"model.{n}": p.transpose(1, 2) if n in self.transposed else p for n, p in self.params.items()}
        buffers = {f"model.{n}": b for n, b in self.buffers.items()}

        def per_run(p: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], *a: Any) -> Any:
            return functional_call(call, (dict(p), dict(b)), a)

        with vectorised():
            return vmap(per_run, in_dims=(0, 0, *dims), randomness="error")(params, buffers, *args)

    # -------------------------------------------------------------------------------------------------- state
    def run_state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Run k's model state dict (copies), as ``models[k].state_dict()`` gives."""
        return {n: t.detach().clone() for n, t in self.models[k].state_dict().items()}
