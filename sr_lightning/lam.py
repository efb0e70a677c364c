"""Local attribution maps (LAM; Gu & Dong, "Interpreting Super-Resolution Networks with Local
Attribution Maps", CVPR 2021): which LR pixels a network used for one window of its output.

The attribution is path-integrated gradients of a *detector* of the output window along the
paper's *progressive-blur path*: from the LR image blurred by a Gaussian of ``sigma`` to the
LR image itself, through Gaussians of falling width (sigma_k = sigma (1 - k/steps)). The
detector is the paper's: the sum, over the window, of the output's gradient magnitude
sqrt(dx^2 + dy^2) (forward differences), so the map shows where the network found the
edges and textures it drew there. The path integral is the trapezoid rule over ``steps``
segments; the attributions sum to the detector's change between the path's ends (the
completeness of integrated gradients) up to the rule's error, which falls as ``steps`` grows.

The *diffusion index* is (1 - Gini) x 100 of the map |sum over channels| (the paper's DI):
near 0 when a few pixels carry everything, larger the more of the image the network draws
on (the paper: networks with wider context score higher and reconstruct better).

Defaults (``sigma`` 1.2 over a 9x9 kernel, 50 steps, a 16-pixel window) are those of the
authors' demo.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sr_lightning.errors import UserError


@dataclass(frozen=True)
class Window:
    """A square window of the output (HR) image: top row ``y``, left column ``x``, side ``size``."""

    y: int
    x: int
    size: int

    @classmethod
    def parse(cls, value: Sequence[int] | None, option: str = "window") -> Window:
        """``[y, x, size]`` from a config, checked for form (integers, size >= 1)."""
        if value is None or len(value) != 3 or any(not isinstance(v, int) or isinstance(v, bool) for v in value):
            raise UserError(f"{option}={value!r} must be [y, x, size]: the output window's top row, left column and "
                            "side in HR pixels, e.g. [120, 200, 16]")
        return cls(*(int(v) for v in value))

    def check(self, out_hw: tuple[int, int], scale: int, option: str = "window") -> None:
        """Refuse, in one line, a window outside an output of ``out_hw`` or smaller than ``scale``."""
        h, w = out_hw
        if self.size < scale:
            raise UserError(f"{option}=[{self.y}, {self.x}, {self.size}]: the side {self.size} is smaller than the "
                            f"scale {scale}, so the window is less than one LR pixel; use a side >= {scale} "
                            "(the paper uses 16)")
        if self.y < 0 or self.x < 0 or self.y + self.size > h or self.x + self.size > w:
            raise UserError(f"{option}=[{self.y}, {self.x}, {self.size}] is outside the {h}x{w} output (rows "
                            f"0..{h - 1}, columns 0..{w - 1}); choose y <= {h - self.size} and x <= {w - self.size}")


def gradient_detector(sr: Tensor, window: Window) -> Tensor:
    """The paper's detector: the sum over ``window`` of sqrt(dx^2 + dy^2) of ``sr`` (N, C, H, W),
    forward differences, all channels; (N,)."""
    dy = sr[..., 1:, :-1] - sr[..., :-1, :-1]
    dx = sr[..., :-1, 1:] - sr[..., :-1, :-1]
    magnitude = torch.sqrt(dx * dx + dy * dy + 1e-12)  # the epsilon keeps the gradient finite at flat pixels
    y, x, s = window.y, window.x, window.size
    return magnitude[..., y: y + s, x: x + s].sum(dim=(1, 2, 3))


def gaussian_kernel(sigma: float, radius: int) -> Tensor:
    """A normalised (2r+1, 2r+1) Gaussian of ``sigma``; sigma 0: the identity (a single 1)."""
    k = torch.zeros(2 * radius + 1, 2 * radius + 1, dtype=torch.float64)
    if sigma <= 0:
        k[radius, radius] = 1.0
        return k
    ax = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * sigma * sigma))
    return g / g.sum()


def blur_path(lr: Tensor, sigma: float, steps: int) -> Tensor:
    """The progressive-blur path: (steps + 1, C, h, w), from ``lr`` (1, C, h, w) blurred by
    sigma (index 0) to ``lr`` (index ``steps``), reflect-padded borders."""
    radius = max(1, math.ceil(3 * sigma))
    if min(lr.shape[-2:]) <= radius:
        raise UserError(f"lam: the LR image ({lr.shape[-2]}x{lr.shape[-1]}) is smaller than the blur kernel "
                        f"({2 * radius + 1}x{2 * radius + 1}); use a larger image or a smaller sigma")
    sigmas = [sigma * (1 - k / steps) for k in range(steps + 1)]
    kernels = torch.stack([gaussian_kernel(s, radius) for s in sigmas]).to(lr.device, lr.dtype)  # (K, k, k)
    padded = F.pad(lr, (radius,) * 4, mode="reflect")[0][:, None]  # (C, 1, h + 2r, w + 2r)
    return F.conv2d(padded, kernels[:, None]).transpose(0, 1).contiguous()  # (C, K, h, w) -> (K, C, h, w)


@dataclass(frozen=True)
class Attribution:
    """A local attribution map.

    Attributes:
        map: (C, h, w) attributions over the LR input (signed).
        detector_change: the detector at the LR minus at the blurred baseline.
        diffusion_index: (1 - Gini(|sum over C|)) x 100.
    """

    map: Tensor
    detector_change: float
    diffusion_index: float

    @property
    def magnitude(self) -> Tensor:
        """(h, w): |sum of the map over channels|, what the index and the overlay use."""
        return self.map.sum(dim=0).abs()


def local_attribution(fn: Callable[[Tensor], Tensor], lr: Tensor, window: Window, scale: int, sigma: float = 1.2,
                      steps: int = 50, batch: int = 4) -> Attribution:
    """The LAM of ``fn`` (LR (N, C, h, w) -> SR (N, C, s*h, s*w)) for ``window`` of its output.

    Args:
        lr: (1, C, h, w) in [0, 1].
        window: in output pixels; checked against the output size and the scale.
        sigma: the baseline's Gaussian blur.
        steps: segments of the path (``steps + 1`` gradient evaluations).
        batch: path points per forward/backward pass.
    """
    if steps < 1:
        raise UserError(f"steps={steps} must be >= 1 (the paper: 50)")
    if sigma <= 0:
        raise UserError(f"sigma={sigma} must be > 0 (the paper: 1.2)")
    window.check((lr.shape[-2] * scale, lr.shape[-1] * scale), scale)
    path = blur_path(lr.detach().float(), sigma, steps)
    grads, values = [], []
    with torch.enable_grad():
        for start in range(0, steps + 1, batch):
            x = path[start: start + batch].clone().requires_grad_(True)
            d = gradient_detector(fn(x).float(), window)
            (g,) = torch.autograd.grad(d.sum(), x)
            grads.append(g.detach())
            values.append(d.detach())
    grad, value = torch.cat(grads), torch.cat(values)
    mean_grad = (grad[1:] + grad[:-1]) / 2  # trapezoid rule over each segment
    attribution = (mean_grad * (path[1:] - path[:-1])).sum(dim=0)
    return Attribution(attribution.cpu(), float(value[-1] - value[0]),
                       diffusion_index(attribution.sum(dim=0).abs().cpu()))


def gini(values: Tensor) -> float:
    """The Gini coefficient of non-negative ``values`` (any shape): 0 when all are equal, towards
    1 when one holds everything; 0 for all zeros."""
    v = np.sort(values.detach().double().flatten().cpu().numpy())
    n, total = v.size, v.sum()
    if n == 0 or total <= 0:
        return 0.0
    index = np.arange(1, n + 1)
    return float(np.sum((2 * index - n - 1) * v) / (n * total))


def diffusion_index(magnitude: Tensor) -> float:
    """The paper's DI: (1 - Gini) x 100 of an attribution magnitude map (h, w)."""
    return (1.0 - gini(magnitude)) * 100.0


def overlay(image: Tensor, magnitude: Tensor, window: Window, scale: int, alpha: float = 0.6) -> np.ndarray:
    """The map over the image, at the output size, with the window outlined.

    Args:
        image: (C, h, w) LR in [0, 1] (shown nearest-neighbour upscaled, in grey).
        magnitude: (h, w) attribution magnitudes (normalised here to the maximum).
        window: the output window (red outline).

    Returns:
        (s*h, s*w, 3) uint8.
    """
    from sr_lightning.callbacks.panels import heat_map

    grey = image.float().mean(dim=0) if image.shape[0] == 3 else image[0].float()
    grey = grey.repeat_interleave(scale, 0).repeat_interleave(scale, 1).clamp(0, 1).cpu().numpy()
    m = magnitude.float().cpu()
    m = (m / m.max()).numpy() if float(m.max()) > 0 else m.numpy()
    heat = heat_map(np.sqrt(m)).repeat(scale, 0).repeat(scale, 1).astype(np.float64)  # sqrt: faint tails stay visible
    weight = alpha * np.sqrt(m).repeat(scale, 0).repeat(scale, 1)[..., None]
    out = (grey[..., None] * 255 * (1 - weight) + heat * weight).round().clip(0, 255).astype(np.uint8)
    y, x, s = window.y, window.x, window.size
    red = np.array([255, 0, 0], np.uint8)
    out[y, x: x + s] = out[y + s - 1, x: x + s] = red
    out[y: y + s, x] = out[y: y + s, x + s - 1] = red
    return out
