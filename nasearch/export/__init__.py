"""Exporters of built detectors (ONNX first; the exporter CLI builds on these)."""
