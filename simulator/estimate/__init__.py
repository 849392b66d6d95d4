"""Closed-form step-time estimate (no event engine): per-op costs + pipeline bubble formula."""

from simulator.estimate.analytical import estimate_step

__all__ = ["estimate_step"]
