"""Taxonomy leaves: the Leaf model and loading with line marks."""
