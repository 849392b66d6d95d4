"""Plots and comparisons of simulation results. matplotlib is imported only here; this package
reads results and never drives the engine (docs/design.md)."""
