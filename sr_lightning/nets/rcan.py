"""RCAN: Zhang et al., "Image Super-Resolution Using Very Deep Residual Channel Attention
Networks", ECCV 2018.

Defaults: the paper's network: a 3x3 convolution to 64 features, 10 residual groups of 20
residual channel-attention blocks (RCAB: 3x3 conv, ReLU, 3x3 conv, channel attention by
global average pooling, a 1x1 squeeze to 64/16 = 4 channels, ReLU, 1x1, sigmoid; plus the
block's input), each group closed by a 3x3 convolution and a skip, a 3x3 convolution and a
global skip over the body, then a pixel-shuffle upsampler (x2 steps, or one x3) and a 3x3
convolution to C channels; the DIV2K mean is subtracted and added back on RGB (as EDSR).
Parameters (RGB): 15,444,643 / 15,629,283 / 15,592,355 at x2 / x3 / x4 (the x3 upsampler
is one 9x step, heavier than x4's two 4x steps); the x4 count is the 15,592K later papers'
tables give RCAN (e.g. SwinIR's Table 2; the paper itself plots "about 16M"). The authors'
fixed mean-shift convolutions are a buffer here (no parameters). ``img_range``: the network
sees ``(x - mean) * img_range`` and its output is divided by it; 1 here (values in [0, 1]),
255 in the authors' code (``rgb_range``), which is what their released weights expect.

The channel attention pools over the whole image, so tiled inference is close to one pass
but not equal to it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from sr_lightning.errors import WeightFormatError
from sr_lightning.nets.base import SRNet
from sr_lightning.nets.blocks import DIV2K_RGB_MEAN, ChannelAttention, PixelShuffleUpsampler, conv, mean_shift
from sr_lightning.nets.release_format import ReleaseFormat, indices, shape, shuffle_scale

log = logging.getLogger(__name__)


class RCAB(nn.Module):
    """Residual channel-attention block, (N, F, H, W) -> same shape."""

    def __init__(self, features: int, reduction: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(features, features), nn.ReLU(inplace=True), conv(features, features),
                                  ChannelAttention(features, reduction))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResidualGroup(nn.Module):
    """``num_blocks`` RCABs and a 3x3 convolution, with a skip over them."""

    def __init__(self, features: int, num_blocks: int, reduction: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*(RCAB(features, reduction) for _ in range(num_blocks)), conv(features, features))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class RCAN(SRNet):
    """RCAN (N, C, h, w) -> (N, C, s*h, s*w) for s in 2, 3, 4, 8."""

    name = "rcan"
    upsampling = "pixel shuffle (x2 steps)"
    paper = "Zhang et al., ECCV 2018"
    published_on_rgb = True
    scales = (2, 3, 4, 8)
    tiles_exactly = False

    @classmethod
    def release_format(cls, config: Mapping[str, Any]) -> ReleaseFormat:
        """The authors' release (github.com/yulunzhang/RCAN): ``head.0``, CALayer's ``conv_du``;
        trained on 0..255 inputs (``img_range`` 255); its mean shifts folded into the weights
        (:func:`fold_mean_shift`)."""
        return ReleaseFormat(key_map=((r"^head\.0\.", "head."), (r"\.conv_du\.", ".excite.")),
                             derived=(r"^(sub|add)_mean\.",), options={"img_range": 255.0}, fold=fold_mean_shift)

    @classmethod
    def detect(cls, state: Mapping[str, Tensor]) -> dict[str, Any] | None:
        """Head, ``num_groups`` residual groups of ``num_blocks`` channel-attention blocks
        (``reduction`` read off the squeeze), the pixel-shuffle tail."""
        head, squeeze = shape(state, "head.weight"), shape(state, "body.0.body.0.body.3.excite.0.weight")
        if head is None or squeeze is None:
            return None
        ups = indices(state, r"^tail\.0\.(\d+)\.weight")
        scale = shuffle_scale(shape(state, "tail.0.0.weight")[0], head[0], len(ups)) if ups else None
        return None if scale is None else {
            "in_channels": head[1], "num_features": head[0], "scale": scale,
            "num_groups": len(indices(state, r"^body\.(\d+)\.body\.")),
            "num_blocks": len(indices(state, r"^body\.0\.body\.(\d+)\.body\.")), "reduction": head[0] // squeeze[0]}

    def __init__(self, *, scale: int = 2, in_channels: int = 3, num_features: int = 64, num_groups: int = 10,
                 num_blocks: int = 20, reduction: int = 16, img_range: float = 1.0,
                 rgb_mean: tuple[float, float, float] | None = DIV2K_RGB_MEAN) -> None:
        super().__init__(scale=scale, in_channels=in_channels)
        self.img_range = img_range
        self.register_buffer("mean", mean_shift(rgb_mean, in_channels), persistent=False)
        self.head = conv(in_channels, num_features)
        self.body = nn.Sequential(*(ResidualGroup(num_features, num_blocks, reduction) for _ in range(num_groups)),
                                  conv(num_features, num_features))
        self.tail = nn.Sequential(PixelShuffleUpsampler(num_features, scale), conv(num_features, in_channels))

    def forward(self, lr: Tensor) -> Tensor:
        x = self.head((lr - self.mean) * self.img_range)
        return self.tail(x + self.body(x)) / self.img_range + self.mean


def _affine_1x1(weight: Tensor, bias: Tensor, key: str, path: Path) -> tuple[Tensor, Tensor]:
    if weight.shape != (3, 3, 1, 1) or bias.shape != (3,):
        raise WeightFormatError(f"'{path}': {key} is {tuple(weight.shape)}, not the (3, 3, 1, 1) mean-shift "
                                f"convolution of RCAN's code")
    return weight[:, :, 0, 0].double(), bias.double()


def fold_mean_shift(cfg: dict[str, Any], tensors: dict[str, Tensor], derived: Mapping[str, tuple[str, Tensor]],
                    path: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """RCAN's mean shifts as the file has them, folded exactly into our network.

    The authors' ``sub_mean`` / ``add_mean`` are 1x1 convolutions (y = W x + b, on 0..255
    values) meant to hold identity weights and -/+ 255 x the DIV2K mean; their code sets
    ``requires_grad = False`` on the module, not on its parameters, so a run can train them.
    Ours: the input is ``(lr - m) * r`` and the output ``tail / r + m`` (r = ``img_range``, m =
    ``rgb_mean``). A file holding the standard values keeps the config as it is; otherwise
    ``m = -W_s^-1 b_s / r`` (the mean the input shift implies), ``W_s`` is folded into the head
    convolution (exact at the zero-padded borders too: W_s 0 = 0) and ``W_a``, ``b_a`` into
    the last convolution of the tail.

    Raises:
        WeightFormatError: the shifts are not 3x3 affine maps, or ``W_s`` is singular.
    """
    if not derived:
        return cfg, tensors
    (ks, ws), (_, bs) = derived["sub_mean.weight"], derived["sub_mean.bias"]
    (ka, wa), (_, ba) = derived["add_mean.weight"], derived["add_mean.bias"]
    (w_s, b_s), (w_a, b_a) = _affine_1x1(ws, bs, ks, path), _affine_1x1(wa, ba, ka, path)
    r, mean = float(cfg["img_range"]), torch.tensor(cfg.get("rgb_mean") or [0.0] * 3, dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64)
    standard = (torch.allclose(w_s, eye, atol=1e-6) and torch.allclose(w_a, eye, atol=1e-6)
                and torch.allclose(b_s, -r * mean, atol=1e-4 * r) and torch.allclose(b_a, r * mean, atol=1e-4 * r))
    if standard:
        return cfg, tensors
    if torch.linalg.matrix_rank(w_s) < 3:
        raise WeightFormatError(f"'{path}': {ks} is a singular 3x3 map, which no mean shift folds into the head")
    m = -torch.linalg.solve(w_s, b_s) / r
    tensors = dict(tensors)
    tensors["head.weight"] = torch.einsum("ojuv,jc->ocuv", tensors["head.weight"].double(), w_s).float()
    last_w, last_b = tensors["tail.1.weight"].double(), tensors["tail.1.bias"].double()
    tensors["tail.1.weight"] = torch.einsum("ij,jcuv->icuv", w_a, last_w).float()
    tensors["tail.1.bias"] = (w_a @ last_b + b_a - r * m).float()
    log.warning("'%s': its mean shifts are not RCAN's standard ones (identity, -/+ %g x the DIV2K mean); folded "
                "into the head and tail convolutions, rgb_mean=%s", path, r, [round(float(v), 6) for v in m])
    return {**cfg, "rgb_mean": [float(v) for v in m]}, tensors
