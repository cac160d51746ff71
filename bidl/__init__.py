"""BIDL: brain-inspired deep learning in PyTorch."""
