"""Discrete-event simulator of LLM pretraining on GPU clusters."""

__version__ = "0.1.0"
