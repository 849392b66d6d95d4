"""Collectives on the topology: which GPUs form a group, how an algorithm decomposes a collective
into point-to-point flows over topology paths, and what that costs."""
