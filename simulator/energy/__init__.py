"""Power and energy: GPU power by activity, node overhead and facility PUE."""
