"""Registered detector components; every module here is imported by `load_blocks()`."""
