"""Pure tensor operations: MATLAB-exact bicubic resize and BT.601 colour conversion."""

from sr_lightning.ops.color import rgb_to_luma, rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from sr_lightning.ops.resize import BORDERS, Imresize, imresize

__all__ = ["BORDERS", "Imresize", "imresize", "rgb_to_luma", "rgb_to_y", "rgb_to_ycbcr", "ycbcr_to_rgb"]
