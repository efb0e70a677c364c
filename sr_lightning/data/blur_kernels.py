"""The blur kernels of Real-ESRGAN's degradation model (Wang et al., ICCVW 2021, Sec. 3.2),
made a batch at a time in closed form on a (K, K) grid centred on its middle pixel.

Every kernel is a function of the quadratic form ``Q = d^T S^-1 d`` of the pixel offset d
with the covariance ``S = R(theta) diag(sigma_x^2, sigma_y^2) R(theta)^T``:

- Gaussian: ``exp(-Q / 2)`` (isotropic: sigma_x = sigma_y, theta = 0);
- generalized Gaussian: ``exp(-(Q ** beta) / 2)``;
- plateau: ``1 / (1 + Q ** beta)``;

and the sinc (ideal circular low-pass) kernel ``omega J1(omega r) / (2 pi r)`` of the radius
r, ``omega^2 / (4 pi)`` at r = 0. A kernel of size k < K is zero outside its central k x k
window; each kernel is normalised to sum to 1.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def offsets(size: int, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """(y, x) offsets from the centre of a (size, size) grid, float32, each (size, size)."""
    r = torch.arange(size, device=device, dtype=torch.float32) - (size - 1) / 2
    return torch.meshgrid(r, r, indexing="ij")


def quadratic_form(sigma_x: Tensor, sigma_y: Tensor, theta: Tensor, size: int) -> Tensor:
    """``Q = d^T S^-1 d`` at every offset d = (x, y) of a (size, size) grid, per kernel.

    Args:
        sigma_x, sigma_y: (B,) standard deviations along the rotated axes (pixels, > 0).
        theta: (B,) rotation of the first axis from the x axis (radians).
        size: the grid side (odd).

    Returns:
        (B, size, size).
    """
    y, x = offsets(size, sigma_x.device)
    c, s = (v[:, None, None] for v in (torch.cos(theta), torch.sin(theta)))
    u = c * x + s * y  # the offset in the kernel's own axes
    v = -s * x + c * y
    return (u / sigma_x[:, None, None]) ** 2 + (v / sigma_y[:, None, None]) ** 2


def gaussian(q: Tensor) -> Tensor:
    """The (unnormalised) Gaussian ``exp(-Q / 2)``."""
    return torch.exp(-0.5 * q)


def generalized_gaussian(q: Tensor, beta: Tensor) -> Tensor:
    """The (unnormalised) generalized Gaussian ``exp(-(Q ** beta) / 2)``; beta (B,) > 0
    (beta = 1: the Gaussian; larger beta: flatter top, sharper fall-off)."""
    return torch.exp(-0.5 * q ** beta[:, None, None])


def plateau(q: Tensor, beta: Tensor) -> Tensor:
    """The (unnormalised) plateau-shaped ``1 / (1 + Q ** beta)``; beta (B,) > 0."""
    return 1.0 / (1.0 + q ** beta[:, None, None])


def sinc(omega: Tensor, size: int) -> Tensor:
    """The (unnormalised) circular low-pass ``omega J1(omega r) / (2 pi r)`` with cutoff
    omega (B,) in radians per pixel (pi: no filtering), ``omega^2 / (4 pi)`` at the centre;
    (B, size, size)."""
    y, x = offsets(size, omega.device)
    r = torch.sqrt(x ** 2 + y ** 2)[None]
    w = omega[:, None, None]
    safe = torch.where(r > 0, r, torch.ones_like(r))
    return torch.where(r > 0, w * torch.special.bessel_j1(w * safe) / (2 * math.pi * safe), w ** 2 / (4 * math.pi))


def window(kernels: Tensor, sizes: Tensor) -> Tensor:
    """Zero each (K, K) kernel outside its central sizes[i] x sizes[i] window (sizes odd,
    <= K) and normalise it to sum to 1; (B, K, K)."""
    k = kernels.shape[-1]
    y, x = offsets(k, kernels.device)
    half = ((sizes - 1) / 2)[:, None, None]
    inside = (x.abs()[None] <= half) & (y.abs()[None] <= half)
    kernels = torch.where(inside, kernels, torch.zeros_like(kernels))
    return kernels / kernels.sum(dim=(-2, -1), keepdim=True)


def delta(batch: int, size: int, device: torch.device | str = "cpu") -> Tensor:
    """(batch, size, size) identity kernels (1 at the centre)."""
    out = torch.zeros(batch, size, size, device=device)
    out[:, size // 2, size // 2] = 1.0
    return out
