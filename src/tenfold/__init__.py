"""tenfold: ten ML research systems, reproducible side by side."""
__version__ = "0.1.0"
