"""nasearch: hardware-aware neural architecture search for real-time object detectors."""

__version__ = "0.1.0"
