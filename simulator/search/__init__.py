"""Search the parallel plans of a scenario: enumerate, prune by memory, simulate, rank."""
