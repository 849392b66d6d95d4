"""`simulator explain`: which operations consume the time, the energy and the money of a run."""
