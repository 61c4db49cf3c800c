"""Data generation: personas, portraits, scenes, captions, splits and shards."""
