"""Numba-jitted hot loops: pure functions of arrays and scalars, each with a plain-Python twin (``.py_func``)."""
