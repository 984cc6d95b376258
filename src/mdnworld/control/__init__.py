"""The controller C: CMA-ES in the dream (train.py), the real game (realgame.py), executors."""
