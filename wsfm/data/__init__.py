"""Datasets: built-in toy distributions (more kinds come with their tasks)."""

from wsfm.data.toy2d import TOY2D, make_toy2d

__all__ = ["TOY2D", "make_toy2d"]
