"""`robo4d imagine` is a single command (the `label` group in commands.py has several)."""

from robo4d.methods.igor.commands import Imagine

COMMAND = Imagine
