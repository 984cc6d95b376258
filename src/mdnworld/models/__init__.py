"""Neural network models: the VAE (vision) and the MDN-RNN (memory)."""
