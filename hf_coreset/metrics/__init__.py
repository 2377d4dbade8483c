"""Figures that judge a coreset without training on it."""

from .coverage import mean_nearest_selected_distance

__all__ = ["mean_nearest_selected_distance"]
