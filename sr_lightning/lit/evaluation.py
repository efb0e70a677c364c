"""The evaluation protocol: how SR outputs are scored (``../shared/data/README.md``; the
docs/evaluation.md: the protocol table).

:class:`Evaluation` owns the options, their literature defaults and their checks. The
class is the Hydra schema of ``conf/evaluation/default.yaml`` (used by train and eval), which
sets only ``bicubic_border`` (it follows the data's degradation).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sr_lightning.errors import UserError
from sr_lightning.ops.resize import BORDERS
from sr_lightning.options import parse_options

# How grayscale test images are scored (Evaluation.gray).
GRAY = ("own", "rgb")
# How a Y network's output is scored on colour images (Evaluation.y_output).
Y_OUTPUT = ("y", "rgb")


@dataclass(frozen=True)
class Evaluation:
    """The protocol options.

    Attributes:
        crop_border: pixels shaved from each border before the metric: None or ``"scale"``
            (the scale, the literature's default), ``"scale+N"`` (e.g. ``"scale+6"``), or an
            integer >= 0.
        y_channel: score BT.601 Y of RGB outputs (grayscale images are their own Y).
        quantize: round the SR output to uint8 before the metric (as when saved to PNG).
        bicubic_border: border mode of the bicubic baseline reported beside the network
            (one of :data:`sr_lightning.ops.resize.BORDERS`).
        gray: how a grayscale test image (Set14's bridge) is scored by an RGB network's
            metric on Y: ``own`` compares its own gray values (BT.601 luma of the output;
            the SRCNN/VDSR papers' tables), ``rgb`` replicates it to RGB first, so its Y is
            16 + 219 v like any RGB image's (IMDN's and most RGB papers' tables; -0.09 dB
            for IMDN Set14 x2 under ``own``). Images of one channel are their own Y either way.
        y_output: how a Y network's output is scored on a colour test image: ``y`` compares
            it with the HR image's Y directly (the SRCNN/VDSR code), ``rgb`` first makes it the
            colour image the authors' test code saves (the LR's chroma upscaled by MATLAB
            bicubic, converted to RGB, clamped and quantised) and scores that image's Y
            (LapSRN's code; +0.03 dB on Set5 x2 for its released model). ``rgb`` needs an RGB
            degradation (``data.degradation.source`` ``rgb_float`` or ``rgb_uint8``) so that
            the LR's colour exists; grayscale images are scored on their own values.
        self_ensemble: score the x8 self-ensemble (the mean over the 8 flips/rotations of
            the input, each undone on the output, before clamping and quantisation; the
            papers' "+" rows) in tests and ``eval``; validation during training stays a
            single pass (8x cheaper).
    """

    crop_border: Any = "scale"  # an int >= 0, "scale", "scale+N" or None (checked below)
    y_channel: bool = True
    quantize: bool = True
    bicubic_border: str = "symmetric"
    gray: str = "own"
    y_output: str = "y"
    self_ensemble: bool = False

    def __post_init__(self) -> None:
        crop_pixels(self.crop_border, 1)  # fails on a form it does not understand
        if self.bicubic_border not in BORDERS:
            raise UserError(f"evaluation.bicubic_border={self.bicubic_border!r} is not one of {BORDERS}")
        if self.gray not in GRAY:
            raise UserError(f"evaluation.gray={self.gray!r} is not one of {GRAY}: own compares a grayscale image's "
                            f"own values, rgb scores it as the RGB image it was read as")
        if self.y_output not in Y_OUTPUT:
            raise UserError(f"evaluation.y_output={self.y_output!r} is not one of {Y_OUTPUT}: y scores a Y network's "
                            f"output as it is, rgb as the colour image its authors' code saves (LapSRN)")
        for name in ("y_channel", "quantize", "self_ensemble"):
            if not isinstance(getattr(self, name), bool):
                raise UserError(f"evaluation.{name}={getattr(self, name)!r} must be true or false")

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> Evaluation:
        """The protocol from a (partial) mapping (a checkpoint's, the API's); unset options take
        the literature's defaults (:func:`~sr_lightning.options.parse_options`).

        Raises:
            UserError: an unknown key or a value it does not understand (named).
        """
        return parse_options(cls, config, "evaluation")

    def as_dict(self) -> dict[str, Any]:
        """Plain values, as checkpoints record them."""
        return asdict(self)


def crop_pixels(value: int | str | None, scale: int) -> int:
    """``evaluation.crop_border`` in pixels at ``scale``.

    >>> crop_pixels("scale", 3), crop_pixels("scale+6", 3), crop_pixels(None, 4), crop_pixels(0, 4)
    (3, 9, 4, 0)
    """
    if value is None:
        return scale
    if isinstance(value, str):
        text = value.replace(" ", "")
        if text == "scale":
            return scale
        if text.startswith("scale+") and text[6:].isdigit():
            return scale + int(text[6:])
        if not text.isdigit():
            raise UserError(f"evaluation.crop_border={value!r} is not understood: use an integer, 'scale' "
                            f"(the literature's default) or 'scale+N' (e.g. 'scale+6')")
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserError(f"evaluation.crop_border={value!r} must be an integer >= 0, 'scale' or 'scale+N'")
    return value
