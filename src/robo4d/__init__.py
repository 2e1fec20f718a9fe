"""robo4d: pre-train robot manipulation policies on human video through 4D point tracks."""

__version__ = "0.1.0"
