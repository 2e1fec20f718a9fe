"""robo4d.nn"""
