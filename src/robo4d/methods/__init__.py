"""robo4d.methods: importing this package registers every built-in method with robo4d.methods.base."""

from robo4d.methods import arm4r, gr1, igor  # noqa: F401  (registers "arm4r", "gr1" and "igor")
