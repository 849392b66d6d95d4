"""Power and energy (GPU power by activity, node overhead, facility PUE) and what they cost."""
