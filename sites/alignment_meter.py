"""How much PGA's alignment acts in a site's training call: the ``pga-alignment`` and
``pga-alignment-share`` of its reply (docs/continual.md, docs/design.md#pga).

At a measured step, for each meta-objective ``w (L_A(θ) + L_B(θ'))``, ``θ' = θ − α ∇L_A(θ)``
(:mod:`sites.replay_objectives`):

- the **alignment** is the cosine between ``∇L_A(θ)`` and ``∇L_B(θ)``, the two gradients the
  meta-objective rewards aligning;
- the **alignment part** is what the meta-objective adds to joint training on the same two
  batches, ``w (∇_θ L_B(θ') − ∇L_B(θ))``; about ``−α w ∇²L_B ∇L_A`` to first order, so it
  vanishes as ``α → 0``.

The step's **share** is ``‖Σ alignment parts‖ / ‖∇ of the whole objective‖``: the fraction of
the gradient the optimizer receives that PGA's alignment contributes. The reply carries the
means over the measured steps. The meter reuses what the step computes anyway (``∇L_A``, the
terms' graphs); measuring a step costs one more forward pass (``L_B(θ)``) and two more backward
passes per meta-objective, so only every ``every``-th step is measured.
"""

import statistics

import torch

from .protocol import MetricKey


class AlignmentMeter:
    """Collects the alignment and its share over one training call's steps.

    Parameters
    ----------
    every : int
        Measure the first step and every ``every``-th after it.
    """

    def __init__(self, every: int = 10) -> None:
        if every < 1:
            raise ValueError(f"the alignment meter measures every k-th step, k >= 1 (got {every})")
        self.every = every
        self._steps = 0
        self._cosines: list[float] = []
        self._shares: list[float] = []
        self._part: torch.Tensor | None = None
        self._whole: torch.Tensor | None = None

    def due(self) -> bool:
        """Called once at every step: whether this one is measured."""
        self._steps += 1
        self._part = self._whole = None
        return (self._steps - 1) % self.every == 0

    def add(self, weight: float, grad_a: torch.Tensor, grad_b: torch.Tensor, grad_b_adapted: torch.Tensor) -> None:
        """One meta-objective of the step, weighted ``weight``: ``∇L_A(θ)``, ``∇L_B(θ)`` and
        ``∇_θ L_B(θ')``, flat (:func:`~sites.replay_objectives.flat`)."""
        self._cosines.append(float(torch.nn.functional.cosine_similarity(grad_a, grad_b, dim=0)))
        self._part = _plus(self._part, weight * (grad_b_adapted - grad_b))
        self._whole = _plus(self._whole, weight * (grad_a + grad_b_adapted))

    def add_plain(self, grad: torch.Tensor) -> None:
        """A term of the step's objective that is not a meta-objective (the current batch's
        loss when only the arbitrary alignment runs)."""
        self._whole = _plus(self._whole, grad)

    def close(self) -> None:
        """Ends the step."""
        if self._part is not None:
            whole = self._whole.norm()
            self._shares.append(float(self._part.norm() / whole.clamp_min(torch.finfo(whole.dtype).tiny)))

    def metrics(self) -> dict[str, float]:
        """``pga-alignment`` and ``pga-alignment-share``, means over the measured steps; empty
        when no step had a meta-objective."""
        if not self._shares:
            return {}
        return {MetricKey.PGA_ALIGNMENT: statistics.fmean(self._cosines),
                MetricKey.PGA_ALIGNMENT_SHARE: statistics.fmean(self._shares)}


def _plus(total: torch.Tensor | None, term: torch.Tensor) -> torch.Tensor:
    return term if total is None else total + term
