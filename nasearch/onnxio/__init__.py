"""ONNX leaf: exporting a torch module to an ONNX file, the one INT8 spec and its QDQ quantizer.

Export, latency and quant all build on these modules; they import none of those packages, so the
three can depend on this one without depending on each other.
"""
