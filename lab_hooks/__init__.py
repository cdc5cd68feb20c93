"""lab-hooks: the LAB method (taxonomy-guided synthetic data + phased training
with replay) as git hooks and a pull-request bot."""

__version__ = "0.1.0"
