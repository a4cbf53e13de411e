"""Simulated fluorescence cells from several independently written renderers (see base.py)."""
