"""Decoders: stored tensors to the model's logical weight matrices, one scheme per module."""
