"""Named end-to-end experiments: the only place (with cli.py) that knows concrete datasets, steps and seeds."""
