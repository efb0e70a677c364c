"""sr_lightning: a Lightning + Hydra framework for single-image super-resolution."""

__version__ = "0.1.0"
