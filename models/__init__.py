"""Marks models/ as the installed package upscaler_edge._models (it carries manifest.toml)."""
