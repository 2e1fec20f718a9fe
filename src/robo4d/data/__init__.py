"""robo4d.data"""
