"""Evaluations of what the tools do, measured on the toy faces with the toy probe:  python -m stylefuse.eval fusion"""
