"""robo4d.methods"""
