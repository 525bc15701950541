"""Accuracy proxies: zero-cost scores of an untrained detector and short-training proxy mAP.

Model level (a function of a detector and an NCHW input shape): `entropy_score` (MAE-DET / DAMO-YOLO),
`zen_score`, `naswot_score`, `synflow_score`, and the `params_score` / `flops_score` baselines.
Architecture level, by name (what the search calls): `registry.get(name).score(arch, imgsz=None, seed=0,
nc=None, **budget) -> ProxyResult(value, kind, higher_is_better, seconds, details)`; `registry.names()`
lists them: entropy, zen, naswot, synflow, params, flops, short_train (which also takes `data`).
"""

from nasearch.proxy.baselines import flops_score, params_score
from nasearch.proxy.entropy import entropy_score
from nasearch.proxy.naswot import naswot_score
from nasearch.proxy.result import ProxyResult
from nasearch.proxy.synflow import synflow_score
from nasearch.proxy.zen import zen_score

__all__ = ["ProxyResult", "entropy_score", "flops_score", "naswot_score", "params_score", "synflow_score", "zen_score"]
