"""Detector building blocks, the detector assembly and the block registry."""
