"""Dataset readers, stand-in generators, preprocessing and downloads."""
