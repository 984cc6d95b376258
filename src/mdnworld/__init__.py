"""mdnworld: World Models on the real ViZDoom Take Cover game, and what each component of
a Mixture Density RNN predicts."""

__version__ = "0.1.0"
