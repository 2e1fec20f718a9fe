"""robo4d.methods: importing this package registers every built-in method with robo4d.methods.base."""

from robo4d.methods import arm4r, igor  # noqa: F401  (registers "arm4r" and "igor")
