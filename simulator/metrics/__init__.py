"""Step metrics: categories, FLOPs utilisation and breakdowns from what the engine (or estimate) timed."""
