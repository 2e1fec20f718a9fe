"""robo4d.eval"""
