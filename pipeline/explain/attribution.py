"""Attribution methods (Captum) over the two inputs of :class:`pipeline.explain.target.RegionForecast`."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from captum.attr import IntegratedGradients, NoiseTunnel, Saliency

from models.linear import LinearRegression

Inputs = tuple[torch.Tensor, torch.Tensor]


def attribute(
    forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    inputs: Inputs,
    baselines: Inputs,
    *,
    method: str,
    n_steps: int = 32,
    n_samples: int = 16,
    noise: float = 0.1,
    internal_batch_size: int = 8,
    seed: int = 0,
) -> tuple[Inputs, float | None]:
    """Attributions of ``forward``'s (B,) output to each element of ``inputs`` (same shapes as the inputs).

    integrated_gradients: Captum's IntegratedGradients from ``baselines`` (Gauss-Legendre, ``n_steps`` points);
    returns also its convergence delta (sum of attributions minus the output difference). smoothgrad: the
    gradient averaged over ``n_samples`` copies of the inputs with Gaussian noise of std ``noise`` (normalised
    units), times (input - baseline). gradient: the plain gradient times (input - baseline). The last two return
    delta None.
    """
    inputs = tuple(x.detach().float().requires_grad_(True) for x in inputs)
    baselines = tuple(b.detach().float() for b in baselines)
    if method == "integrated_gradients":
        ig = IntegratedGradients(forward)
        attr, delta = ig.attribute(
            inputs,
            baselines=baselines,
            n_steps=n_steps,
            internal_batch_size=internal_batch_size,
            return_convergence_delta=True,
        )
        return tuple(a.detach() for a in attr), float(delta.abs().max())
    if method == "smoothgrad":
        torch.manual_seed(seed)
        grads = NoiseTunnel(Saliency(forward)).attribute(
            inputs,
            nt_type="smoothgrad",
            nt_samples=n_samples,
            nt_samples_batch_size=internal_batch_size,
            stdevs=noise,
            abs=False,
        )
    elif method == "gradient":
        grads = Saliency(forward).attribute(inputs, abs=False)
    else:
        raise ValueError(f"unknown attribution method {method!r}")
    return tuple((g * (x - b)).detach() for g, x, b in zip(grads, inputs, baselines)), None


def randomized_copy(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """A copy of ``model`` with every learned weight redrawn from a normal of the same mean and std (the model
    randomisation test of Adebayo et al. 2018): every parameter, and the fitted coefficients of a least-squares
    part (``models.linear.LinearRegression.coef``, a buffer: the residual emulators' linear regression), which
    would otherwise give the trained and the randomised model the same explanation."""

    clone = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    learned = list(clone.parameters()) + [m.coef for m in clone.modules() if isinstance(m, LinearRegression)]
    with torch.no_grad():
        for p in learned:
            std = float(p.std()) if p.numel() > 1 else 0.0
            std = std if std > 0 else 0.02
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            p.copy_((noise * std + float(p.mean())).to(p.dtype))
    return clone.eval()
