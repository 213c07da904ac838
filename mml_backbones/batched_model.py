"""K training runs of one configuration in lockstep, on stacked parameters (DESIGN.md "Batched runs").

Technique: hand-written batched layers over stacked weights. Run k's ``MultimodalModel`` is built by the
ordinary ``Trainer`` with run k's seed (so its initial weights are exactly those the Trainer would train), then
every parameter of the K models is stacked into one leaf tensor with a leading run axis: a Linear becomes a
transposed weight (K, in, out) and a bias (K, out), and a layer is one ``torch.baddbmm`` over the stack.
Autograd gives the backward (bmm again). We did not use ``torch.func.stack_module_state`` +
``functional_call`` + ``vmap``: for the MLP / linear-fusion family the batched layer is three lines, it needs no
per-call functionalisation, and run k's gradient is simply the k-th slice because the runs share no parameter.

Quantities are per run. Each iteration run k draws ``max_m n_km`` indices from its own stream (the Trainer's
``IndexStream``, seeded ``[seed, 1]``), padded to a common width; modality m is encoded on the first
``max_k n_km`` rows and a per-run mask keeps run k's first n_km: the unimodal loss is the masked SUM of
cross-entropy / B, the fusion loss the MEAN cross-entropy over run k's first ``min_m n_km`` rows, s_t(m) the
masked mean true-class probability. Padding rows are computed and thrown away (no cost in the uniform case).

Optimisers: ``torch.optim.SGD`` (momentum, weight decay) and ``torch.optim.Adam`` run on the stacked tensors,
with the fused kernels where torch has them. Both are elementwise given their hyper-parameters and step count,
so on (K, ...) tensors they are K independent optimisers as long as every run steps at every iteration with the
same learning rate, which lockstep guarantees: the runs of one batch start together, share one schedule and
end together (tests/dus_env/test_batched.py checks the equivalence against K separate optimisers).

Scope (``unsupported_reason``): MLP encoders without dropout; concat, sum and late fusion; the methods built
on ``Joint`` (joint, concat) with or without the DUS plug-in losses; SGD and Adam, any schedule, no gradient
clipping, no per-modality learning rates; the synthetic and npz datasets (in-memory tensors).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mml_backbones.config import to_dict
from mml_backbones.data.dataset import DatasetSplits
from mml_backbones.data.registry import load_dataset
from mml_backbones.errors import ConfigError
from mml_backbones.methods import METHODS
from mml_backbones.methods.joint import Joint
from mml_backbones.models.encoders import default_encoder_name
from mml_backbones.models.model import MultimodalModel
from mml_backbones.observation import DiscrepancyObservation
from mml_backbones.optim import OptimConfig, build_scheduler
from mml_backbones.quantities import Quantities, validate_quantities
from mml_backbones.statistics import StatisticsConfig
from mml_backbones.trainer import Trainer
from mml_backbones.trainer_config import ScheduleProgress, TrainerConfig

SUPPORTED_DATASETS = ("synthetic", "npz")
SUPPORTED_FUSIONS = ("concat", "sum", "late")
SUPPORTED_OPTIMIZERS = ("sgd", "adam")
#: rows x runs of one evaluation chunk: activations that stay in cache (64 MiB ones made evaluation memory-bound)
EVAL_CHUNK_ROWS = 4096


class OutOfScopeError(ConfigError):
    """The configuration needs something the batched runs do not implement (the message says what)."""


def unsupported_reason(config: TrainerConfig, splits: DatasetSplits) -> str | None:
    """Why ``config`` cannot run batched on ``splits`` (None when it can)."""
    c = config.resolved()
    if c.dataset not in SUPPORTED_DATASETS:
        return f"dataset {c.dataset!r} (batched runs support {', '.join(SUPPORTED_DATASETS)})"
    if METHODS.get(c.method).method_class() is not Joint:
        return f"method {c.method!r} (batched runs support the joint-loss methods: joint, concat)"
    train = splits.select_modalities(c.modalities).train if c.modalities else splits.train
    for m in train.modality_names:
        data = train.modalities[m]
        if not isinstance(data, torch.Tensor) or not data.is_floating_point():
            return f"modality {m!r} is not an in-memory float tensor"
        shape = train.input_shape(m)
        name = c.model.encoders.get(m) or c.model.encoder or default_encoder_name(shape, data.dtype)
        if name != "mlp":
            return f"encoder {name!r} for modality {m!r} (batched runs support mlp)"
        options = {**splits.info.get("encoder_defaults", {}).get(m, {}).get(name, {})}
        options.update(c.model.encoder_options.get("*", {}), **c.model.encoder_options.get(m, {}))
        if options.get("dropout", 0.0):
            return "encoder dropout > 0 (batched runs draw no dropout masks)"
    if c.model.fusion not in SUPPORTED_FUSIONS:
        return f"fusion {c.model.fusion!r} (batched runs support {', '.join(SUPPORTED_FUSIONS)})"
    o = c.optim
    assert o is not None
    if o.name not in SUPPORTED_OPTIMIZERS:
        return f"optimizer {o.name!r} (batched runs support {', '.join(SUPPORTED_OPTIMIZERS)})"
    if o.grad_clip is not None:
        return "grad_clip (the global norm would have to be taken per run)"
    if o.scale_lr_by_quantity:
        return "scale_lr_by_quantity (per-run, per-modality learning rates)"
    return None


# ------------------------------------------------------------------------------------------------ the model
def _linear(x: torch.Tensor, weight_t: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """K Linear layers at once: x (K, N, in), or (N, in) shared by every run, times weight_t (K, in, out)."""
    if x.dim() == 2:  # evaluation: every run sees the same rows (expand is a view, not a copy)
        x = x.expand(weight_t.shape[0], *x.shape)
    return torch.baddbmm(bias.unsqueeze(1), x, weight_t)


class StackedModel:
    """K ``MultimodalModel``s of one architecture (MLP encoders; concat, sum or late fusion) as stacked tensors.

    ``params`` maps each parameter name of the model (``model.named_parameters()``) to a leaf tensor whose k-th
    slice is run k's parameter: biases (K, out), weights transposed, (K, in, out). The transpose is why the
    update is cheap: bmm's weight gradient x^T g comes out as (K, in, out), so autograd accumulates it in the
    parameter's own layout; with (K, out, in) weights it copied every gradient (a quarter of the run time).
    """

    def __init__(self, models: Sequence[MultimodalModel], device: torch.device | str = "cpu") -> None:
        if not models:
            raise ConfigError("StackedModel needs at least one model")
        first = models[0]
        self.num_runs = len(models)
        self.modalities = first.modalities
        self.num_classes = first.num_classes
        self.fusion = type(first.fusion).__name__
        self.encoders: dict[str, list[str]] = {}
        for m in self.modalities:
            net = getattr(first.encoders[m], "net", None)
            if net is None:
                raise OutOfScopeError(f"encoder of {m!r} is not an MLP")
            self.encoders[m] = [f"encoders.{m}.net.{i}" for i, layer in enumerate(net) if isinstance(layer, nn.Linear)]
        self.heads = {m: f"heads.{m}" for m in self.modalities}
        self.projections = {m: f"fusion.proj.{m}" for m in self.modalities} if self.fusion == "SumFusion" else {}
        self.fusion_head = None if first.fusion_head is None else "fusion_head"
        used = {f"{p}.{k}" for p in self._layer_names() for k in ("weight", "bias")}
        names = [n for n, _ in first.named_parameters()]
        if set(names) != used:  # a layer this forward would not apply: refuse rather than train it wrongly
            raise OutOfScopeError(f"parameters not covered by the batched forward: {sorted(set(names) - used)}")
        per_model = [dict(model.named_parameters()) for model in models]
        self.params: dict[str, torch.Tensor] = {}
        for n in names:
            stacked = torch.stack([p[n].detach() for p in per_model])
            if n.endswith(".weight"):
                stacked = stacked.transpose(1, 2)
            self.params[n] = stacked.contiguous().to(device).requires_grad_()

    def _layer_names(self) -> list[str]:
        names = [n for layers in self.encoders.values() for n in layers]
        names += [*self.heads.values(), *self.projections.values()]
        return names + ([self.fusion_head] if self.fusion_head else [])

    def parameters(self) -> list[torch.Tensor]:
        """The stacked leaf tensors, in the model's parameter order."""
        return list(self.params.values())

    def _apply(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return _linear(x, self.params[f"{name}.weight"], self.params[f"{name}.bias"])

    def forward(
        self,
        inputs: Mapping[str, torch.Tensor],
        n_paired: int,
        detach_unimodal: bool = False,
        shared: bool = False,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(fused logits (K, n_paired, C), unimodal logits {m: (K, N_m, C)}) as ``MultimodalModel.forward`` gives.

        ``inputs[m]`` is (K, N_m, *shape), or (N_m, *shape) shared by every run when ``shared``; the fusion sees
        the first ``n_paired`` rows of every modality.
        """
        features, unimodal = {}, {}
        for m in self.modalities:
            h = (inputs[m].flatten(1) if shared else inputs[m].flatten(2)).float()
            for layer in self.encoders[m]:
                h = torch.relu_(self._apply(layer, h))  # in place: baddbmm's backward does not need its output
            features[m] = h
            unimodal[m] = self._apply(self.heads[m], h.detach() if detach_unimodal else h)
        n = n_paired
        if self.fusion_head is None:  # late fusion: log of the mean of the heads' softmax
            log_probs = torch.stack([torch.log_softmax(unimodal[m][:, :n], -1) for m in self.modalities])
            fused = torch.logsumexp(log_probs, 0) - math.log(len(self.modalities))
        elif self.projections:  # sum fusion
            paired = [self._apply(self.projections[m], features[m][:, :n]) for m in self.modalities]
            fused = self._apply(self.fusion_head, torch.stack(paired).sum(0))
        else:  # concat fusion
            fused = self._apply(self.fusion_head, torch.cat([features[m][:, :n] for m in self.modalities], -1))
        return fused, unimodal

    def run_state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Run k's parameters as a ``MultimodalModel`` state dict (copies)."""
        return {n: (p[k].T if n.endswith(".weight") else p[k]).detach().clone() for n, p in self.params.items()}


def stacked_optimizer(params: Sequence[torch.Tensor], config: OptimConfig) -> torch.optim.Optimizer:
    """SGD or Adam over stacked tensors, as ``optim.OPTIMIZERS`` builds them, with torch's fused kernels if any."""
    if config.name == "sgd":
        cls, kwargs = torch.optim.SGD, {"momentum": config.momentum, "weight_decay": config.weight_decay}
    elif config.name == "adam":
        cls, kwargs = torch.optim.Adam, {"weight_decay": config.weight_decay}
    else:
        raise OutOfScopeError(f"optimizer {config.name!r} (batched runs support {', '.join(SUPPORTED_OPTIMIZERS)})")
    try:  # one pass over parameters, gradients and state: the update is memory-bound at these sizes
        return cls(params, lr=config.lr, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):
        return cls(params, lr=config.lr, foreach=True, **kwargs)


# ------------------------------------------------------------------------------------------- the statistics
class StackedStatistics:
    """``ModalityStatistics`` of K runs as (K, M) arrays, every modality scored at every iteration.

    The same numpy formulas as ``ModalityStatistics.update`` (running mean, EMA or window for S_t; blocks of
    ``block`` iterations for speed and loss), vectorised over runs, so the observations are the Trainer's.
    """

    def __init__(self, num_runs: int, num_modalities: int, config: StatisticsConfig, block: int) -> None:
        self.config = config
        self.block = block
        shape = (num_runs, num_modalities)
        self.t = 0
        self.last = np.zeros(shape)
        self.cumulative = np.zeros(shape)
        self.samples = np.zeros(shape, dtype=np.int64)
        self._ema_raw = np.zeros(shape)
        self._window: deque[np.ndarray] = deque(maxlen=config.window)
        self.block_score = np.full(shape, np.nan)
        self.previous_block_score = np.full(shape, np.nan)
        self.block_loss = np.full(shape, np.nan)
        self._block_sums = np.zeros((2, *shape))  # score and loss sums within the current block

    @property
    def speed(self) -> np.ndarray:
        """(K, M): change of s_t(m) per iteration between the last two complete blocks (0 before)."""
        return np.nan_to_num((self.block_score - self.previous_block_score) / self.block, nan=0.0)

    @property
    def loss(self) -> np.ndarray:
        """(K, M): mean unimodal training cross-entropy over the latest complete block (0 before)."""
        return np.nan_to_num(self.block_loss, nan=0.0)

    def update(self, scores: np.ndarray, quantities: np.ndarray, losses: np.ndarray) -> None:
        """Add one iteration's s_t (K, M), the quantities it used (K, M) and its unimodal losses (K, M)."""
        self.t += 1
        n = self.t
        self.samples += quantities
        self._block_sums[0] += scores
        self._block_sums[1] += losses
        if n % self.block == 0:
            self.previous_block_score = self.block_score
            self.block_score = self._block_sums[0] / self.block
            self.block_loss = self._block_sums[1] / self.block
            self._block_sums = np.zeros_like(self._block_sums)
        self.last = scores
        kind = self.config.kind
        if kind == "running_mean":
            self.cumulative = ((n - 1) * self.cumulative + scores) / n
        elif kind == "ema":
            d = self.config.ema_decay
            self._ema_raw = d * self._ema_raw + (1 - d) * scores
            self.cumulative = self._ema_raw / (1 - d**n)
        else:
            self._window.append(scores)
            self.cumulative = np.array(self._window).sum(0) / len(self._window)


# ----------------------------------------------------------------------------------------------- the runs
class BatchedTrainer(ScheduleProgress):
    """K ``Trainer`` runs of one configuration (seeds apart) trained in lockstep on stacked parameters.

    The step-wise API of the Trainer, one entry per run: ``decide`` takes (K, M) quantities,
    ``run_iterations(n)`` trains every run, ``observations()`` / ``observation_vectors()``, ``evaluate()`` and
    ``pop_train_losses()`` answer per run. Members may repeat a seed (the paired reward's reference run is the
    agent's run again, with other quantities).
    """

    def __init__(self, configs: Sequence[TrainerConfig], splits: DatasetSplits | None = None) -> None:
        if not configs:
            raise ConfigError("BatchedTrainer needs at least one run")
        configs = [c.resolved() for c in configs]
        c = configs[0]
        shared = {k: v for k, v in to_dict(c).items() if k != "seed"}
        if any({k: v for k, v in to_dict(o).items() if k != "seed"} != shared for o in configs[1:]):
            raise ConfigError("the runs of a batch must share every setting but the seed")
        if splits is None:
            splits = load_dataset(c.dataset, **c.dataset_options)
        reason = unsupported_reason(c, splits)
        if reason is not None:
            raise OutOfScopeError(f"not batched: {reason}")
        self.config = c
        self.seeds = [cfg.seed for cfg in configs]
        self.num_runs = len(configs)
        self.device = torch.device(c.device)
        # each run's initial state comes from the Trainer itself: the same weights, data order and bookkeeping
        runs = [Trainer(cfg, splits=splits) for cfg in configs]
        first = runs[0]
        self.splits = first.splits
        self.modalities = first.modalities
        self.iterations_per_epoch = first.iterations_per_epoch
        self.total_iterations = first.total_iterations
        self.max_quantity = first.max_quantity
        self.streams = [r.stream for r in runs]
        # the Trainer's fixed validation subset (its own rule, seeded per run)
        self._val_rows = np.stack([r._rows("val", c.val_max_samples) for r in runs])
        self.model = StackedModel([r.model for r in runs], self.device)
        method = first.method
        if not isinstance(method, Joint):
            raise OutOfScopeError(f"not batched: method {c.method!r}")
        fusion_only = method.fusion_only
        self.detach_unimodal = method.detach_unimodal
        self.fusion_weight = float(method.config.fusion_weight)
        # Method.train_step back-propagates every term: a fusion-only method's monitor losses train their heads
        self.unimodal_weight = 1.0 if fusion_only else float(method.config.unimodal_weight)
        prefix = "dus/" if fusion_only and c.dus_losses else "monitor/" if fusion_only else "unimodal/"
        self.loss_names = ["fused", *(prefix + m for m in self.modalities)]
        del runs, first, method  # their models now live as slices of the stack
        assert c.optim is not None
        self.optimizer = stacked_optimizer(self.model.parameters(), c.optim)
        self.scheduler = build_scheduler(self.optimizer, c.optim, c.epochs)
        self.statistics = StackedStatistics(self.num_runs, len(self.modalities), c.statistics, c.decision_interval)
        train = self.splits.train
        self._inputs = {m: train.modalities[m].to(self.device) for m in self.modalities}
        self._labels = train.labels.to(self.device)
        val = self.splits.val
        self._val_inputs = {m: val.modalities[m].to(self.device) for m in self.modalities}
        self._val_labels = val.labels.to(self.device)
        self.quantities: np.ndarray | None = None
        self.iteration = 0
        self.epoch = 0
        self._loss_sums = np.zeros((self.num_runs, len(self.loss_names)))
        self._loss_count = 0

    # ------------------------------------------------------------------------------------------- decisions
    def decide(self, quantities: np.ndarray | Sequence[Quantities]) -> np.ndarray:
        """Validate one quantity set per run and make them the next interval's; returns them as (K, M) ints."""
        if len(quantities) != self.num_runs:
            raise ConfigError(f"expected quantities for {self.num_runs} runs, got {len(quantities)}")
        rows = [validate_quantities(q, self.modalities, self.max_quantity) for q in quantities]
        self.quantities = np.array([[r[m] for m in self.modalities] for r in rows], dtype=np.int64)
        return self.quantities

    def observations(self) -> list[DiscrepancyObservation]:
        """Each run's observation now (as ``DUSController.observation``)."""
        s = self.statistics
        speed, loss = s.speed, s.loss
        if self.quantities is None:
            allocation = np.full(s.cumulative.shape, 1.0 / len(self.modalities))
        else:
            allocation = self.quantities / self.quantities.sum(1, keepdims=True)
        return [
            DiscrepancyObservation(
                modalities=self.modalities,
                cumulative=s.cumulative[k].copy(),
                last=s.last[k].copy(),
                samples=s.samples[k].copy(),
                progress=self.progress,
                iteration=self.iteration,
                nominal_batch_size=self.config.batch_size,
                speed=speed[k],
                loss=loss[k],
                allocation=allocation[k],
            )
            for k in range(self.num_runs)
        ]

    def observation_vectors(self) -> np.ndarray:
        """(K, D) float32: every run's observation vector (``config.observation_features``)."""
        return np.stack([o.vector(self.config.observation_features) for o in self.observations()])

    # -------------------------------------------------------------------------------------------- training
    def run_iterations(self, n: int) -> int:
        """Run up to ``n`` iterations of every run (fewer if the schedule ends) with the decided quantities."""
        if self.quantities is None:
            raise ConfigError("no quantities decided yet: call decide(quantities)")
        n = min(n, self.total_iterations - self.iteration)
        if n <= 0:
            return 0
        q, dev = self.quantities, self.device
        draw = q.max(1)  # run k draws max_m n_km indices per iteration, as the Trainer does
        # the interval's indices at once: consecutive takes from a stream are one longer take
        idx = np.zeros((n, self.num_runs, int(draw.max())), dtype=np.int64)  # padding rows: index 0, masked
        for k, stream in enumerate(self.streams):
            idx[:, k, : draw[k]] = stream.take(n * int(draw[k])).reshape(n, int(draw[k]))
        idx_t = torch.from_numpy(idx).to(dev)
        batch = _Masks(q, self.config.batch_size, dev)
        scores = torch.empty((n, 2, self.num_runs, len(self.modalities)))
        terms = torch.empty((n, self.num_runs, len(self.loss_names)), dtype=torch.float64)
        for t in range(n):
            self._iteration(idx_t[t], batch, scores[t], terms[t])
        # the statistics and logs take the interval at once, in iteration order
        scores_np = scores.double().numpy()
        for t in range(n):
            self.statistics.update(scores_np[t, 0], q, scores_np[t, 1])
        sums = terms.sum(0).numpy()
        if not np.isfinite(sums).all():
            bad = np.flatnonzero(~np.isfinite(sums).all(1)).tolist()
            raise FloatingPointError(
                f"non-finite loss in runs {bad} by iteration {self.iteration}; "
                "lower the learning rate or check the inputs"
            )
        self._loss_sums += sums
        self._loss_count += n
        return n

    def _iteration(self, idx: torch.Tensor, batch: _Masks, scores: torch.Tensor, terms: torch.Tensor) -> None:
        k_runs, c = self.num_runs, self.model.num_classes
        labels = self._labels[idx]  # (K, width)
        inputs = {}
        for j, m in enumerate(self.modalities):
            rows = idx[:, : batch.rows[j]]
            x = self._inputs[m]
            inputs[m] = x.index_select(0, rows.reshape(-1)).view(k_runs, batch.rows[j], *x.shape[1:])
        fused, unimodal = self.model.forward(inputs, batch.paired, self.detach_unimodal)
        y = labels[:, : batch.paired]
        ce = F.cross_entropy(fused.reshape(-1, c), y.reshape(-1), reduction="none").view_as(y)
        losses = [self.fusion_weight * (ce * batch.fused_weights).sum(1)]
        ces = []
        for j, m in enumerate(self.modalities):
            y = labels[:, : batch.rows[j]]
            ce_m = F.cross_entropy(unimodal[m].reshape(-1, c), y.reshape(-1), reduction="none").view_as(y)
            ces.append(ce_m)
            losses.append(self.unimodal_weight * (ce_m * batch.masks[j]).sum(1) / self.config.batch_size)
        stacked = torch.stack(losses, 1)  # (K, terms)
        self.optimizer.zero_grad(set_to_none=True)
        stacked.sum().backward()
        self.optimizer.step()
        with torch.no_grad():
            for j, ce_m in enumerate(ces):
                ce_m = ce_m.detach()
                # the true-class probability is exp(-cross-entropy): no second softmax
                scores[0, :, j] = (torch.exp(-ce_m) * batch.masks[j]).sum(1) / batch.counts[:, j]
                scores[1, :, j] = (ce_m * batch.masks[j]).sum(1) / batch.counts[:, j]
            terms.copy_(stacked.detach())
        self.iteration += 1
        if self.iteration % self.iterations_per_epoch == 0:
            self.epoch += 1
            if self.scheduler is not None:
                self.scheduler.step()

    def pop_train_losses(self) -> list[dict[str, float]]:
        """Per run, the mean of each logged training term since the last call (as ``Trainer.pop_train_losses``)."""
        means = self._loss_sums / max(1, self._loss_count)
        out = [dict(zip(self.loss_names, row.tolist())) for row in means]
        self._loss_sums[:] = 0.0
        self._loss_count = 0
        return out

    def current_lr(self) -> float:
        """Learning rate of the (shared) schedule."""
        return float(self.optimizer.param_groups[0]["lr"])

    # ------------------------------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate_val(self) -> list[dict[str, float]]:
        """Per run, the validation metrics the environment rewards (``dus_env.reference.validation_metrics``).

        Fused and per-head accuracy and the fused cross-entropy ``fused_loss`` (of the clipped fused class
        probabilities), on the Trainer's validation rows (``val_max_samples``).
        """
        rows = self._val_rows
        shared = bool((rows == rows[0]).all())  # the whole split: one (N, d) block serves every run
        labels = self._val_labels
        names = ["fused_acc", *(f"acc/{m}" for m in self.modalities)]
        correct = torch.zeros((len(names), self.num_runs), dtype=torch.float64)
        nll = torch.zeros(self.num_runs, dtype=torch.float64)
        chunk = max(1, min(self.config.eval_batch_size, EVAL_CHUNK_ROWS // self.num_runs))
        rows_t = torch.from_numpy(np.ascontiguousarray(rows[0] if shared else rows)).to(self.device)
        floor = math.log(1e-12)  # validation_metrics clips probabilities at 1e-12
        for start in range(0, rows.shape[1], chunk):
            part = rows_t[..., start : start + chunk]
            inputs = {m: x[part] for m, x in self._val_inputs.items()}
            fused, unimodal = self.model.forward(inputs, part.shape[-1], shared=shared)
            y = labels[part].expand(self.num_runs, -1)
            logits = [fused, *(unimodal[m] for m in self.modalities)]
            for i, z in enumerate(logits):
                correct[i] += (z.argmax(-1) == y).sum(-1).double().cpu()
            log_p = torch.log_softmax(fused.float(), -1).gather(-1, y.unsqueeze(-1)).squeeze(-1)
            nll -= log_p.clamp_min(floor).double().sum(-1).cpu()
        acc = (correct / rows.shape[1]).numpy()
        loss = (nll / rows.shape[1]).numpy()
        return [{**dict(zip(names, acc[:, k].tolist())), "fused_loss": float(loss[k])} for k in range(self.num_runs)]


class _Masks:
    """One decision interval's per-run masks over the common draw (quantities are fixed within it)."""

    def __init__(self, q: np.ndarray, batch_size: int, device: torch.device) -> None:
        qt = torch.from_numpy(q).to(device)
        #: rows encoded per modality: the largest n_m of any run
        self.rows = [int(r) for r in q.max(0)]
        #: rows fused: the largest paired prefix min_m n_m of any run
        self.paired = int(q.min(1).max())
        #: (K, rows_m) 1 on run k's first n_km rows
        self.masks = [(torch.arange(r, device=device) < qt[:, j, None]).float() for j, r in enumerate(self.rows)]
        self.counts = qt.float()
        p = qt.min(1).values
        #: (K, paired) 1 / p_k on run k's first p_k rows: the fusion loss is a mean over the paired prefix
        self.fused_weights = (torch.arange(self.paired, device=device) < p[:, None]).float() / p[:, None].float()
