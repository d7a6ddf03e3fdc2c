"""The bijection of the flow action generator (``decoder="flow"``): a conditional map of the box [-1, 1]^d onto itself.

At every state s, ``F_s`` maps the unit code u in [-1, 1]^d onto the action a in [-1, 1]^d, one-to-one. It is a
stack of coupling layers (Dinh et al., 2017; Durkan et al., 2019, "Neural Spline Flows"): each layer moves one half
of the coordinates by a monotone rational-quadratic spline on [-1, 1] (zuko's ``MonotonicRQSTransform``), whose bins
and knot slopes a network computes from the state and the other half. Both directions take one pass per layer:

- decoding u -> a (acting, the soft target, the latent policy's loss) evaluates each spline;
- encoding a -> u (the likelihood only) inverts each spline in closed form (a quadratic per coordinate).

The splines fix -1 and +1 and keep every slope within [FLOW_MIN_SLOPE, 1 / FLOW_MIN_SLOPE]: the density of a is
then bounded below on the whole box, so the log-likelihood of an action at exactly +-1 (clipped actions, common in
the replay buffer) is finite. With d = 1 the one layer's spline is conditioned on the state alone.

The last layer of every conditioner starts at zero: equal bins and unit slopes, so ``F_s`` starts as the identity.
"""

from __future__ import annotations

import torch as th
from stable_baselines3.common.torch_layers import create_mlp
from torch import nn
from zuko.transforms import MonotonicRQSTransform

# Spline bins per coordinate (Neural Spline Flows uses 8 on a bounded interval).
FLOW_BINS = 8
# The smallest slope of a spline, and 1 / it the largest: bounds the density, and the log-likelihood, on the box.
FLOW_MIN_SLOPE = 1e-3


class CouplingSplineFlow(nn.Module):
    """
    ``F_s``: [-1, 1]^d -> [-1, 1]^d, monotone rational-quadratic coupling layers conditioned on state features.

    Two layers for d >= 2 (the first half of the coordinates given the second, then the second given the first, so
    that every output depends on every input), one for d = 1.

    :param features_dim: Size of the state features the conditioners read
    :param dim: d, the size of the code and of the action
    :param net_arch: Hidden layers of each conditioner
    :param activation_fn: Their activation
    """

    def __init__(self, features_dim: int, dim: int, net_arch: list[int], activation_fn: type[nn.Module]):
        super().__init__()
        self.dim = dim
        # Each layer moves the coordinates [start, stop) given the others: slices, so that no coordinate is copied.
        half = (dim + 1) // 2
        self.layers = [(0, half), (half, dim)] if dim > 1 else [(0, 1)]
        self.conditioners = nn.ModuleList()
        for start, stop in self.layers:
            n_moved = stop - start
            conditioner = nn.Sequential(
                *create_mlp(features_dim + dim - n_moved, n_moved * (3 * FLOW_BINS - 1), net_arch, activation_fn)
            )
            last = conditioner[-1]
            assert isinstance(last, nn.Linear)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            self.conditioners.append(conditioner)

    def _layer(
        self, index: int, features: th.Tensor, x: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor, MonotonicRQSTransform]:
        """Layer ``index``'s split of ``x`` (the coordinates before, moved, after) and its spline, which the other
        coordinates condition (they are the same on both sides of the layer)."""
        start, stop = self.layers[index]
        before, moved, after = x[:, :start], x[:, start:stop], x[:, stop:]
        params = self.conditioners[index](th.cat([features, before, after], dim=1))
        params = params.reshape(-1, stop - start, 3 * FLOW_BINS - 1)
        widths, heights, slopes = (p.contiguous() for p in params.split([FLOW_BINS, FLOW_BINS, FLOW_BINS - 1], dim=-1))
        return before, moved, after, MonotonicRQSTransform(widths, heights, slopes, bound=1.0, slope=FLOW_MIN_SLOPE)

    def forward(self, features: th.Tensor, unit: th.Tensor) -> th.Tensor:
        """a = F_s(u), for u in [-1, 1]^d."""
        for index in range(len(self.layers)):
            before, moved, after, spline = self._layer(index, features, unit)
            unit = th.cat([before, spline(moved), after], dim=1)
        return unit

    def forward_and_log_det(self, features: th.Tensor, unit: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """a = F_s(u) and log |det dF_s/du|, shape (batch,)."""
        total = th.zeros(unit.shape[0], device=unit.device)
        for index in range(len(self.layers)):
            before, moved, after, spline = self._layer(index, features, unit)
            moved, ladj = spline.call_and_ladj(moved)
            unit, total = th.cat([before, moved, after], dim=1), total + ladj.sum(dim=1)
        return unit, total

    def inverse_and_log_det(self, features: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """u = F_s^-1(a) and log |det dF_s^-1/da|, shape (batch,), for a in [-1, 1]^d."""
        total = th.zeros(actions.shape[0], device=actions.device)
        for index in reversed(range(len(self.layers))):
            before, moved, after, spline = self._layer(index, features, actions)
            preimage = spline.inv(moved)
            # log |dF^-1/da| = -log |dF/du| at the preimage (zuko's spline gives the latter in closed form)
            total = total - spline.call_and_ladj(preimage)[1].sum(dim=1)
            actions = th.cat([before, preimage, after], dim=1)
        return actions, total
