"""Validation against published training runs: case files, runner, error tables."""
