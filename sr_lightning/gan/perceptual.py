"""A perceptual (feature) loss on VGG19 features (Johnson et al. 2016; SRGAN's "VGG54").

The VGG19 convolutional trunk is built here (layer indices as torchvision's
``vgg19().features``, so a saved torchvision state dict loads as is); its weights come
from a file path in config and are never downloaded. Without a path the trunk is
randomly initialised (for tests; a random network is not a meaningful perceptual loss).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sr_lightning.errors import UserError
from sr_lightning.files import load_tensors

log = logging.getLogger(__name__)

# VGG19 ("E"): output channels per conv, "M" = 2x2 max pool.
_VGG19 = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512)
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _layer_names() -> list[str]:
    names, block, conv = [], 1, 1
    for v in _VGG19:
        if v == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 1
        else:
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
            conv += 1
    return names


# How feature maps are compared: SRGAN's MSE, or ESRGAN's L1 (the authors' training code).
CRITERIA = {"mse": F.mse_loss, "l1": F.l1_loss}


class PerceptualLoss(nn.Module):
    """Distance between VGG19 features of SR and HR ((N, C, H, W) in [0, 1], C = 1 or 3), frozen.

    Args:
        layer: the feature layer, e.g. ``relu5_4`` (SRGAN's VGG54), ``conv5_4`` (ESRGAN:
            the same features before the activation) or ``relu2_2``; or a mapping
            {layer: weight} for a weighted sum over several (Real-ESRGAN: conv1_2 and
            conv2_2 at 0.1, conv3_4, conv4_4 and conv5_4 at 1).
        criterion: ``mse`` (SRGAN) or ``l1`` (ESRGAN).
        weights: path to a VGG19 ``features`` state dict (torchvision key names, with or
            without the ``features.`` prefix), loaded with ``weights_only=True``; None:
            random initialisation (tests).
    """

    def __init__(self, layer: str | Mapping[str, float] = "relu5_4", weights: str | None = None,
                 criterion: str = "mse") -> None:
        super().__init__()
        names = _layer_names()
        layers_weights = {layer: 1.0} if isinstance(layer, str) else dict(layer)
        for name, weight in layers_weights.items():
            if name not in names:
                raise UserError(f"perceptual.layer={name!r} is not a VGG19 layer; use one of {', '.join(names)}")
            if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
                raise UserError(f"perceptual.layer.{name}={weight!r} must be a weight >= 0")
        if not layers_weights:
            raise UserError("perceptual.layer is empty: give a VGG19 layer (e.g. conv5_4) or {layer: weight}")
        # (index in the trunk, weight), shallowest first
        self.taps = sorted((names.index(name), float(w)) for name, w in layers_weights.items())
        if criterion not in CRITERIA:
            raise UserError(f"perceptual.criterion={criterion!r} is not one of {sorted(CRITERIA)}")
        self.distance = CRITERIA[criterion]
        layers: list[nn.Module] = []
        cin = 3
        for v in _VGG19:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:  # not in place: a tapped convolution's output must survive its ReLU
                layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU()]
                cin = int(v)
        self.features = nn.Sequential(*layers[: self.taps[-1][0] + 1])
        if weights:
            self._load(Path(weights).expanduser())
        else:
            log.warning("perceptual loss with a randomly initialised VGG19 (perceptual.weights is null): "
                        "fine for tests, meaningless for training; set perceptual.weights=<vgg19 features .pth>")
        self.features.requires_grad_(False).eval()
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def _load(self, path: Path) -> None:
        state = load_tensors(path, "perceptual.weights", "a VGG19 features state dict (.pth), or null")
        if not isinstance(state, dict):
            raise UserError(f"perceptual.weights='{path}' holds a {type(state).__name__}, not a state dict")
        state = {k.removeprefix("features."): v for k, v in state.items()
                 if isinstance(k, str) and not k.startswith("classifier.")}
        own = self.features.state_dict()
        missing = [k for k in own if not isinstance(state.get(k), torch.Tensor) or state[k].shape != own[k].shape]
        if missing:
            raise UserError(f"perceptual.weights='{path}' does not hold VGG19 features: {missing[:4]} missing or of "
                             f"another shape")
        self.features.load_state_dict({k: state[k] for k in own})

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.features.eval()  # frozen: always inference behaviour
        return self

    def _embed(self, x: Tensor) -> list[Tensor]:
        """The tapped feature maps, shallowest first."""
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        x = (x - self.mean) / self.std
        taps, out = dict(self.taps), []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in taps:
                out.append(x)
        return out

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        with torch.no_grad():
            targets = self._embed(hr)
        return sum(w * self.distance(f, t) for (_, w), f, t in zip(self.taps, self._embed(sr), targets, strict=True))
