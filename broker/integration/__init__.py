"""The broker on the platform: the only part of broker/ that imports Django."""
