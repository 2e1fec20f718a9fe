"""robo4d.serve"""
