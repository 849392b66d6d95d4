"""Pure cost functions: op time on a GPU, collective time on the cluster. Each formula once."""
