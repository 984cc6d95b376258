"""mdnworld: World Models on the real ViZDoom Take Cover game, and what each MDN-RNN component predicts."""

__version__ = "0.1.0"
