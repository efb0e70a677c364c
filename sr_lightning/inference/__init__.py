"""Inference: a network ready to upscale (a checkpoint's in PyTorch, or an ONNX export in
onnxruntime), tiled upscaling of images and folders, and the export core."""

from sr_lightning.inference.folders import output_pairs, upscale_files
from sr_lightning.inference.tiling import Box, tiled_forward
from sr_lightning.inference.upscaler import (
    Upscaler,
    is_out_of_memory,
    load_upscaler,
    onnx_upscaler,
    pytorch_upscaler,
    tile_progress,
    upscale_file,
    upscale_pixels,
    upscale_tensor,
)

__all__ = ["Box", "Upscaler", "is_out_of_memory", "load_upscaler", "onnx_upscaler", "output_pairs", "pytorch_upscaler",
           "tile_progress", "tiled_forward", "upscale_file", "upscale_files", "upscale_pixels", "upscale_tensor"]
