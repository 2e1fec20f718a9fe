"""robo4d.methods.arm4r"""
