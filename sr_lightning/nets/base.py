"""What every network shares: the scale contract and pre-upsampling with MATLAB bicubic."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

from torch import Tensor, nn

from sr_lightning.errors import UserError
from sr_lightning.nets.release_format import ReleaseFormat
from sr_lightning.ops.resize import BORDERS, imresize


class SRNet(nn.Module):
    """Base class: ``forward(lr (N, C, h, w)) -> sr (N, C, s*h, s*w)``, values about [0, 1].

    Subclasses set ``name``, ``scales`` (the integer scales they support; ``None``: any
    integer >= 2), ``scale_agnostic`` (True when the weights do not depend on the scale,
    so a checkpoint may be evaluated at another one), ``upsampling`` and ``paper`` (for
    ``python -m sr_lightning.zoo``), and call ``super().__init__(scale=..., in_channels=...)``.
    """

    name: ClassVar[str] = ""
    scales: ClassVar[tuple[int, ...] | None] = None
    scale_agnostic: ClassVar[bool] = False
    # For the zoo table: how the network upsamples, and its paper (short citation).
    upsampling: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    # Published on RGB images (a run on Y, data.channels=1, is warned about: its tables and its
    # released weights are RGB).
    published_on_rgb: ClassVar[bool] = False
    # Tiled inference equals one pass when the overlap covers the receptive field (False for
    # networks with image-wide statistics, e.g. global channel attention).
    tiles_exactly: ClassVar[bool] = True
    # The only LR size (h, w) the network takes (e.g. one ending in a fully connected layer);
    # None: any size. x8 self-ensemble needs square inputs of that size (it rotates them).
    fixed_input_size: ClassVar[tuple[int, int] | None] = None

    def __init__(self, *, scale: int, in_channels: int) -> None:
        super().__init__()
        self.check_scale(scale)
        if in_channels not in (1, 3):
            raise UserError(f"{self.name}: in_channels={in_channels} is not supported (1 = Y, 3 = RGB)")
        self.scale, self.in_channels = int(scale), in_channels

    @classmethod
    def check_scale(cls, scale: int | float) -> None:
        """Raise a ValueError naming the network and its supported scales if ``scale`` is not one."""
        if scale != int(scale) or int(scale) < 2:
            raise UserError(f"scale={scale} is not supported by {cls.name}: use an integer >= 2")
        if cls.scales is not None and int(scale) not in cls.scales:
            raise UserError(
                f"scale={scale} is not supported by {cls.name} (supported scales: {', '.join(map(str, cls.scales))})"
            )


    @classmethod
    def release_format(cls, config: Mapping[str, Any]) -> ReleaseFormat:
        """How the authors' release of this network, built with ``config`` (variants may lay
        out their weights differently), names its tensors
        (:class:`~sr_lightning.nets.release_format.ReleaseFormat`); this default: our names,
        nothing derived. :mod:`sr_lightning.convert.release` applies it."""
        return ReleaseFormat()

    @classmethod
    def release_formats(cls) -> dict[str, ReleaseFormat]:
        """Every layout a file of this network may come in, by name: ours and the authors'
        release (:meth:`release_format` of the default config); detection tries each."""
        release = cls.release_format({})
        return {"sr_lightning": ReleaseFormat(), **({"release": release} if release != ReleaseFormat() else {})}

    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """The constructor arguments a state dict in our key names fixes (widths, depths, the
        scale and channels where the weights hold them; a release's derived tensors, such as
        index tables, are there too), or None when it is not this network's.
        Read from key names and shapes only; :func:`sr_lightning.nets.detect` then builds the
        network with them and checks every key and shape. This default: not detectable."""
        return None

    def release_derived(self, key: str) -> Tensor | None:
        """What this network computes for a derived tensor of its authors' release (our key
        name) that is none of its own buffers (a table the release keeps once for all layers);
        None: nothing of the kind. :func:`sr_lightning.convert.release.check_derived` compares."""
        return None

    def training_loss(self, lr: Tensor, hr: Tensor, criterion: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
        """The training objective of one batch, LR (N, C, h, w) and HR (N, C, s*h, s*w) in [0, 1]:
        ``criterion`` between the output (in float32) and the HR image. A network supervised at
        several outputs says so here (LapSRN: every pyramid level)."""
        return criterion(self(lr).float(), hr)

    def deployed_parameter_count(self) -> int:
        """The parameters of the network as it runs in evaluation, the count papers report:
        all of them, unless a network folds training-time branches into fewer weights (SPAN)."""
        return sum(p.numel() for p in self.parameters())

    @contextmanager
    def at_scale(self, scale: int) -> Iterator[None]:
        """Run at another scale inside the ``with`` block (multi-scale training); only for
        ``scale_agnostic`` networks, whose layers do not depend on the scale."""
        if scale == self.scale:
            yield
            return
        if not self.scale_agnostic:
            raise UserError(f"{self.name} is built for x{self.scale} and cannot run at x{scale}: train it on one "
                             f"scale (drop data.train_scales)")
        self.check_scale(scale)
        saved, self.scale = self.scale, int(scale)
        try:
            yield
        finally:
            self.scale = saved


class PreUpsampleNet(SRNet):
    """A network that refines the MATLAB-bicubic upscale of its input (SRCNN, VDSR)."""

    upsampling = "bicubic first (MATLAB)"
    scale_agnostic = True  # the scale only sets the bicubic pre-upsampling (a subclass that learns it says so)

    def __init__(self, *, scale: int, in_channels: int, upsample_border: str = "clamp") -> None:
        super().__init__(scale=scale, in_channels=in_channels)
        if upsample_border not in BORDERS:
            raise UserError(f"{self.name}: upsample_border={upsample_border!r} is not one of {BORDERS}")
        self.upsample_border = upsample_border

    def upsample(self, lr: Tensor) -> Tensor:
        """(N, C, h, w) -> (N, C, s*h, s*w) MATLAB bicubic, computed in float32 or better."""
        return imresize(lr, self.scale, border=self.upsample_border)
