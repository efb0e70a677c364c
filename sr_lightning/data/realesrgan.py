"""Real-ESRGAN's second-order degradation (Wang et al., ICCVW 2021), applied to whole
training batches on the model's device (``data/degradation=realesrgan``).

From a batch of HR patches: stage 1 (blur, random resize, Gaussian or Poisson noise, JPEG),
stage 2 (the same with its own ranges; the blur only with ``blur_prob``), then in random
order {resize to the LR size + sinc filter} and JPEG; the result rounded to 8 bits. Blur
kernels, noise and JPEG quality are drawn per image; the resize factor and mode, and the
final order, per batch (one LR size per batch). The options and the paper's values are in
``conf/data/degradation/realesrgan.yaml``; :meth:`RealESRGAN.from_config` checks them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from kornia.enhance import jpeg_codec_differentiable
from kornia.filters import filter2d
from omegaconf import MISSING
from torch import Tensor

from sr_lightning.data import blur_kernels as bk
from sr_lightning.data.pairs import BENCHMARK_LR, Degradation
from sr_lightning.errors import UserError
from sr_lightning.ops.color import rgb_to_luma
from sr_lightning.options import checked

KERNELS = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
RESIZE = ("up", "down", "keep")
RESIZE_MODES = ("area", "bilinear", "bicubic")
OPTION = "data.degradation.realesrgan"
# Poisson noise counts photons at 8-bit levels: x * 256 events for an intensity x in [0, 1].
POISSON_LEVELS = 256.0


def _range(value: Any, name: str, low: float, high: float | None = None) -> tuple[float, float]:
    """A [low, high] option: two numbers, low <= high, within [low, high] bounds given."""
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        raise UserError(f"{OPTION}.{name}={value!r} must be a range [low, high] of two numbers")
    a, b = (float(v) for v in value)
    if a > b:
        raise UserError(f"{OPTION}.{name}={[a, b]} is inverted: write it [low, high], e.g. {[b, a]}")
    if a < low or (high is not None and b > high):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise UserError(f"{OPTION}.{name}={[a, b]} must lie within {bound}")
    return a, b


def _probability(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
        raise UserError(f"{OPTION}.{name}={value!r} is a probability: give a number in [0, 1]")
    return float(value)


def _choices(value: Any, name: str, known: Sequence[str]) -> dict[str, float]:
    """{choice: probability}, the names known, probabilities in [0, 1] summing to 1."""
    if not isinstance(value, Mapping) or not value:
        raise UserError(f"{OPTION}.{name} must map each of {list(known)} to its probability (summing to 1)")
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise UserError(f"{OPTION}.{name}: unknown {unknown}; known: {', '.join(known)}")
    out = {k: _probability(v, f"{name}.{k}") for k, v in value.items()}
    if abs(sum(out.values()) - 1.0) > 1e-6:
        raise UserError(f"{OPTION}.{name} probabilities sum to {sum(out.values()):g}, not 1: {out}")
    return out


@dataclass  # not frozen: OmegaConf makes a frozen dataclass's node read-only, and Hydra merges the YAML onto it
class Stage:
    """One degradation stage's options (ranges are [low, high], drawn uniformly).

    Attributes:
        kernels: {kernel name: probability} over :data:`KERNELS`, summing to 1.
        blur_prob: probability that an image is blurred at all in this stage.
        sinc_prob: probability that a blurred image gets a sinc kernel instead.
        sigma: the Gaussian-family kernels' standard deviations (pixels).
        beta_generalized, beta_plateau: the shape exponents of those kernels.
        resize: {up, down, keep: probability} of the batch's resize.
        resize_range: the factor range (up draws from [1, high], down from [low, 1]).
        gaussian_noise_prob: Gaussian noise, else Poisson.
        noise_sigma: Gaussian noise standard deviation in 8-bit levels.
        poisson_scale: Poisson noise strength.
        gray_noise_prob: one noise field for all three channels (gray), else per channel.
        jpeg_quality: JPEG quality range (1-100).
    """

    kernels: dict[str, float]
    blur_prob: float
    sinc_prob: float
    sigma: tuple[float, float]
    beta_generalized: tuple[float, float]
    beta_plateau: tuple[float, float]
    resize: dict[str, float]
    resize_range: tuple[float, float]
    gaussian_noise_prob: float
    noise_sigma: tuple[float, float]
    poisson_scale: tuple[float, float]
    gray_noise_prob: float
    jpeg_quality: tuple[float, float]

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], name: str) -> Stage:
        """A stage's options (checked for keys and types by :meth:`RealESRGAN.from_config`)."""
        p = {k: _probability(cfg[k], f"{name}.{k}") for k in ("blur_prob", "sinc_prob", "gaussian_noise_prob",
                                                                "gray_noise_prob")}
        return cls(kernels=_choices(cfg["kernels"], f"{name}.kernels", KERNELS),
                   resize=_choices(cfg["resize"], f"{name}.resize", RESIZE),
                   sigma=_range(cfg["sigma"], f"{name}.sigma", 1e-3),
                   beta_generalized=_range(cfg["beta_generalized"], f"{name}.beta_generalized", 1e-3),
                   beta_plateau=_range(cfg["beta_plateau"], f"{name}.beta_plateau", 1e-3),
                   resize_range=_range(cfg["resize_range"], f"{name}.resize_range", 1e-3),
                   noise_sigma=_range(cfg["noise_sigma"], f"{name}.noise_sigma", 0.0),
                   poisson_scale=_range(cfg["poisson_scale"], f"{name}.poisson_scale", 0.0),
                   jpeg_quality=_range(cfg["jpeg_quality"], f"{name}.jpeg_quality", 1.0, 100.0), **p)


@dataclass  # not frozen, as Stage
class RealESRGAN:
    """The whole degradation: two :class:`Stage` s and the final step.

    Attributes:
        stage1, stage2: the stages.
        kernel_size: the range of kernel sizes (odd sizes drawn uniformly from it; 21 at
            most sets the filter size).
        sinc_cutoff: the sinc kernels' cutoff range in units of pi, for kernels of 13
            pixels and more; ``sinc_cutoff_small`` for smaller ones (a small kernel cannot
            hold a low cutoff).
        final_sinc_prob: probability of the final sinc filter (per image).
        final_sinc_cutoff: its cutoff range (units of pi).
        resize_modes: the interpolation modes drawn from for each resize.
    """

    stage1: Stage
    stage2: Stage
    kernel_size: tuple[int, int]
    sinc_cutoff: tuple[float, float]
    sinc_cutoff_small: tuple[float, float]
    final_sinc_prob: float
    final_sinc_cutoff: tuple[float, float]
    resize_modes: list[str]

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> RealESRGAN:
        """The options from ``data.degradation.realesrgan`` (all of them:
        ``conf/data/degradation/realesrgan.yaml`` states the paper's); each bad one named in one
        line: keys and types by :func:`~sr_lightning.options.checked`, ranges and probabilities here."""
        if not isinstance(cfg, Mapping):
            raise UserError(f"{OPTION} must be a mapping of options, not {cfg!r}")
        cfg = checked(cls, cfg, OPTION)
        lo, hi = _range(cfg["kernel_size"], "kernel_size", 1, 99)
        if lo != int(lo) or hi != int(hi) or int(lo) % 2 == 0 or int(hi) % 2 == 0:
            raise UserError(f"{OPTION}.kernel_size={list(cfg['kernel_size'])} must be odd integers (a kernel has a "
                            f"centre pixel)")
        modes = list(cfg["resize_modes"]) if isinstance(cfg["resize_modes"], Sequence) else []
        bad = [m for m in modes if m not in RESIZE_MODES]
        if not modes or bad:
            raise UserError(f"{OPTION}.resize_modes={cfg['resize_modes']!r}: give a non-empty list of "
                            f"{', '.join(RESIZE_MODES)}")
        return cls(stage1=Stage.from_config(cfg["stage1"], "stage1"), stage2=Stage.from_config(cfg["stage2"], "stage2"),
                   kernel_size=(int(lo), int(hi)),
                   sinc_cutoff=_range(cfg["sinc_cutoff"], "sinc_cutoff", 1e-3, 1.0),
                   sinc_cutoff_small=_range(cfg["sinc_cutoff_small"], "sinc_cutoff_small", 1e-3, 1.0),
                   final_sinc_prob=_probability(cfg["final_sinc_prob"], "final_sinc_prob"),
                   final_sinc_cutoff=_range(cfg["final_sinc_cutoff"], "final_sinc_cutoff", 1e-3, 1.0),
                   resize_modes=modes)

    # -- drawing -------------------------------------------------------------------------
    @staticmethod
    def _uniform(bounds: tuple[float, float], n: int, g: torch.Generator, device: torch.device) -> Tensor:
        lo, hi = bounds
        return lo + (hi - lo) * torch.rand(n, generator=g, device=device)

    @staticmethod
    def _choice(probs: Mapping[str, float], n: int, g: torch.Generator, device: torch.device) -> list[str]:
        names = list(probs)
        idx = torch.multinomial(torch.tensor([probs[k] for k in names], device=device), n, replacement=True,
                                generator=g)
        return [names[i] for i in idx.tolist()]

    def _sizes(self, n: int, g: torch.Generator, device: torch.device) -> Tensor:
        lo, hi = self.kernel_size
        return lo + 2 * torch.randint(0, (hi - lo) // 2 + 1, (n,), generator=g, device=device)

    def _sinc(self, sizes: Tensor, cutoff: tuple[float, float] | None, g: torch.Generator) -> Tensor:
        """Sinc kernels (B, K, K): the cutoff from ``cutoff``, or by size when None."""
        n, device = sizes.shape[0], sizes.device
        if cutoff is None:
            big, small = self._uniform(self.sinc_cutoff, n, g, device), self._uniform(self.sinc_cutoff_small, n, g,
                                                                                     device)
            omega = math.pi * torch.where(sizes < 13, small, big)
        else:
            omega = math.pi * self._uniform(cutoff, n, g, device)
        return bk.window(bk.sinc(omega, self.kernel_size[1]), sizes)

    def kernels(self, stage: Stage, n: int, g: torch.Generator, device: torch.device) -> Tensor:
        """A stage's blur kernels for n images: (n, K, K), each summing to 1 (identity for
        the images that ``blur_prob`` leaves sharp)."""
        big = self.kernel_size[1]
        sizes = self._sizes(n, g, device)
        kinds = self._choice(stage.kernels, n, g, device)
        aniso = torch.tensor([k.endswith("aniso") for k in kinds], device=device)
        sx, sy = self._uniform(stage.sigma, n, g, device), self._uniform(stage.sigma, n, g, device)
        theta = self._uniform((-math.pi, math.pi), n, g, device)
        sy, theta = torch.where(aniso, sy, sx), torch.where(aniso, theta, torch.zeros_like(theta))
        q = bk.quadratic_form(sx, sy, theta, big)
        beta_g = self._uniform(stage.beta_generalized, n, g, device)
        beta_p = self._uniform(stage.beta_plateau, n, g, device)
        family = torch.tensor([k.startswith("generalized") + 2 * k.startswith("plateau") for k in kinds],
                              device=device)[:, None, None]  # 0 Gaussian, 1 generalized, 2 plateau
        shape = torch.where(family == 0, bk.gaussian(q), torch.where(family == 1, bk.generalized_gaussian(q, beta_g),
                                                                     bk.plateau(q, beta_p)))
        kernels = bk.window(shape, sizes)
        use_sinc = torch.rand(n, generator=g, device=device) < stage.sinc_prob
        kernels = torch.where(use_sinc[:, None, None], self._sinc(sizes, None, g), kernels)
        blur = torch.rand(n, generator=g, device=device) < stage.blur_prob
        return torch.where(blur[:, None, None], kernels, bk.delta(n, big, device))

    # -- the steps -----------------------------------------------------------------------
    @staticmethod
    def _filter(x: Tensor, kernels: Tensor) -> Tensor:
        """Each image with its kernel, mirrored borders (replicated when the image is no
        larger than the kernel's radius, which a mirror cannot pad)."""
        border = "reflect" if min(x.shape[-2:]) > kernels.shape[-1] // 2 else "replicate"
        return filter2d(x, kernels, border_type=border)

    def _resize(self, x: Tensor, size: tuple[int, int], g: torch.Generator) -> Tensor:
        mode = self.resize_modes[int(torch.randint(0, len(self.resize_modes), (1,), generator=g, device=g.device))]
        size = (max(1, size[0]), max(1, size[1]))
        if mode == "area":
            return F.interpolate(x, size=size, mode="area")
        return F.interpolate(x, size=size, mode=mode, align_corners=False)

    def _factor(self, stage: Stage, g: torch.Generator) -> float:
        kind = self._choice(stage.resize, 1, g, g.device)[0]
        lo, hi = stage.resize_range
        u = float(torch.rand(1, generator=g, device=g.device))
        if kind == "up":
            return 1.0 + (max(hi, 1.0) - 1.0) * u
        if kind == "down":
            return min(lo, 1.0) + (1.0 - min(lo, 1.0)) * u
        return 1.0

    def noise(self, x: Tensor, stage: Stage, g: torch.Generator) -> Tensor:
        """Gaussian (sigma from ``noise_sigma`` / 255) or Poisson (``poisson_scale`` times the
        shot noise of 256 levels) noise per image, gray or colour; clamped to [0, 1]."""
        n, device = x.shape[0], x.device
        gaussian = (torch.rand(n, generator=g, device=device) < stage.gaussian_noise_prob)[:, None, None, None]
        gray = (torch.rand(n, generator=g, device=device) < stage.gray_noise_prob)[:, None, None, None]
        sigma = self._uniform(stage.noise_sigma, n, g, device)[:, None, None, None] / 255.0
        scale = self._uniform(stage.poisson_scale, n, g, device)[:, None, None, None]
        colour_g = torch.randn(x.shape, generator=g, device=device)
        gray_g = torch.randn((n, 1, *x.shape[2:]), generator=g, device=device)
        gauss = torch.where(gray, gray_g, colour_g) * sigma
        clean = x.clamp(0.0, 1.0)
        luma = rgb_to_luma(clean)
        colour_p = torch.poisson(clean * POISSON_LEVELS, generator=g) / POISSON_LEVELS - clean
        gray_p = torch.poisson(luma * POISSON_LEVELS, generator=g) / POISSON_LEVELS - luma
        poisson = torch.where(gray, gray_p, colour_p) * scale
        return (x + torch.where(gaussian, gauss, poisson)).clamp(0.0, 1.0)

    def jpeg(self, x: Tensor, stage: Stage, g: torch.Generator) -> Tensor:
        """JPEG compression (kornia's differentiable codec) at a quality per image."""
        quality = self._uniform(stage.jpeg_quality, x.shape[0], g, x.device)
        return jpeg_codec_differentiable(x.clamp(0.0, 1.0), quality)

    def __call__(self, hr: Tensor, scale: int, g: torch.Generator) -> Tensor:
        """HR (B, 3, H, W) in [0, 1] -> degraded LR (B, 3, H/scale, W/scale) in [0, 1],
        8-bit levels; reproducible from ``g`` (a generator on ``hr``'s device)."""
        n, _, h, w = hr.shape
        out_size = (h // scale, w // scale)
        x = hr.float()
        for i, stage in enumerate((self.stage1, self.stage2)):
            x = self._filter(x, self.kernels(stage, n, g, x.device))
            f = self._factor(stage, g)
            base = (h, w) if i == 0 else out_size  # stage 2 resizes around the LR size
            x = self._resize(x, (int(base[0] * f), int(base[1] * f)), g)
            x = self.noise(x, stage, g)
            if i == 0:
                x = self.jpeg(x, stage, g)
        sinc_first = bool(torch.rand(1, generator=g, device=g.device) < 0.5)
        sizes = self._sizes(n, g, x.device)
        final = self._sinc(sizes, self.final_sinc_cutoff, g)
        keep = torch.rand(n, generator=g, device=x.device) < self.final_sinc_prob
        final = torch.where(keep[:, None, None], final, bk.delta(n, self.kernel_size[1], x.device))
        if not sinc_first:
            x = self.jpeg(x, self.stage2, g)
        x = self._filter(self._resize(x, out_size, g), final)
        if sinc_first:
            x = self.jpeg(x, self.stage2, g)
        return torch.round(x.clamp(0.0, 1.0) * 255.0) / 255.0


@dataclass(frozen=True)
class RealESRGANDegradation(Degradation):
    """``data/degradation=realesrgan``'s schema: the evaluation sets' LR made as the standard
    benchmark LR files (:data:`~sr_lightning.data.pairs.BENCHMARK_LR`), and the training
    batches' by :class:`RealESRGAN` with the ``realesrgan`` options (all of them, stated in its
    YAML: the paper's values), which Hydra checks for keys and types."""

    source: str = BENCHMARK_LR.source
    border: str = BENCHMARK_LR.border
    antialias: bool = BENCHMARK_LR.antialias
    realesrgan: RealESRGAN = MISSING
