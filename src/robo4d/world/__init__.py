"""robo4d.world"""
