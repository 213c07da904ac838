"""Alternating-stage schedules: which modality trains at a given iteration (MIE/IGM stages, MLA turns).

Stage k trains modality ``modalities[k mod M]`` for ``lengths[k mod L]`` iterations, so the modalities and the
stage lengths cycle independently: with two modalities and lengths (25, 50) the first modality always gets the
short stages (the authors' IGM schedule, there counted in epochs), with one length of 1 every iteration goes to
the next modality (MLA's turns). The stage is a pure function of the iteration counter, so a resumed run needs
no schedule state.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Literal

from mml_backbones.errors import ConfigError

StageUnit = Literal["iterations", "epochs"]


@dataclass(frozen=True)
class Stage:
    """One stage of the schedule.

    Attributes:
        index: 0-based stage number.
        modality: the modality trained in this stage.
        start: the stage's first iteration.
        length: iterations in the stage.
    """

    index: int
    modality: str
    start: int
    length: int

    @property
    def end(self) -> int:
        """The first iteration after the stage."""
        return self.start + self.length


class StageSchedule:
    """Cycles the modalities through stages whose lengths (in iterations) cycle through ``lengths``."""

    def __init__(self, modalities: Sequence[str], lengths: Sequence[int]) -> None:
        self.modalities = tuple(modalities)
        self.lengths = tuple(int(n) for n in lengths)
        if not self.modalities:
            raise ConfigError("an alternating schedule needs at least one modality")
        if not self.lengths:
            raise ConfigError("an alternating schedule needs at least one stage length")
        bad = [n for n in self.lengths if n < 1]
        if bad:
            raise ConfigError(f"stage lengths must be >= 1 iteration, got {list(self.lengths)}")
        self._ends = list(accumulate(self.lengths))  # ends of the stages of one pass through ``lengths``
        self._period = self._ends[-1]

    @classmethod
    def from_config(
        cls, modalities: Sequence[str], lengths: Sequence[int], unit: StageUnit, iterations_per_epoch: int
    ) -> StageSchedule:
        """A schedule whose ``lengths`` are counted in ``unit`` (epochs are converted with ``iterations_per_epoch``)."""
        if unit not in ("iterations", "epochs"):
            raise ConfigError(f"stage unit must be 'iterations' or 'epochs', got {unit!r}")
        scale = iterations_per_epoch if unit == "epochs" else 1
        return cls(modalities, [int(n) * scale for n in lengths])

    def stage_at(self, iteration: int) -> Stage:
        """The stage that contains ``iteration`` (0-based)."""
        if iteration < 0:
            raise ValueError(f"iteration must be >= 0, got {iteration}")
        passes, offset = divmod(iteration, self._period)
        j = bisect.bisect_right(self._ends, offset)
        index = passes * len(self.lengths) + j
        start = passes * self._period + (self._ends[j - 1] if j > 0 else 0)
        return Stage(index, self.modalities[index % len(self.modalities)], start, self.lengths[j])

    def previous(self, stage: Stage) -> Stage | None:
        """The stage before ``stage`` (None for the first)."""
        return self.stage_at(stage.start - 1) if stage.start > 0 else None
