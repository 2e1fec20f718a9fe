"""Frozen pretrained encoders behind small protocols; weights are loaded lazily from local files only."""
