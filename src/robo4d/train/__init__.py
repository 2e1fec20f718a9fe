"""robo4d.train"""
