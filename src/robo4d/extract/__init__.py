"""robo4d.extract"""
