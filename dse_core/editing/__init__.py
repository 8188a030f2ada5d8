"""Editing inverted images (paper Sec. IV-D): latent directions, where they come from, and how they apply."""

from .apply import edit, interpolate, parse_layers, parse_strengths, slerp
from .compute import class_direction, pca, sefa, svm_boundary
from .direction import Direction
from .readers import load_direction
from .files import edit_files

__all__ = ["Direction", "class_direction", "edit_files", "pca", "sefa", "svm_boundary", "edit", "interpolate", "load_direction",
           "parse_layers", "parse_strengths", "slerp"]
