"""The Hydra configs of the entry points (a package, so Hydra finds them in an installed wheel)."""
