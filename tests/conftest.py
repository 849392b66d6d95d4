"""What the tests share: where the bundled scenarios are, and how exactly the books must balance."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCENARIO_DIR = ROOT / "scenarios"
SCENARIO_FILES = sorted(SCENARIO_DIR.glob("*.yaml"))  # every bundled scenario, for parametrised tests

# The breakdown's categories sum to the step time up to float round-off: at most 1e-15 of it over
# every bundled scenario (both engines) and the 333 plans of the GPT-3 search space.
BOOKS_REL = 1e-13


def scenario_file(name: str) -> Path:
    """A bundled scenario by its stem, e.g. "gpt3-125m-8xa100"."""
    path = SCENARIO_DIR / f"{name}.yaml"
    assert path.is_file(), path
    return path


@pytest.fixture(scope="session")
def small_scenario() -> Path:
    """GPT-3 125M on one DGX A100: simulates in a fraction of a second."""
    return scenario_file("gpt3-125m-8xa100")


@pytest.fixture(scope="session")
def gpt3_scenario() -> Path:
    """GPT-3 175B on 1024 A100 with Megatron-LM's plan."""
    return scenario_file("gpt3-175b-1024xa100")
