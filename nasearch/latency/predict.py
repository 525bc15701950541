"""Latency prediction from the database: the sum of the architecture's unit latencies, corrected by a
per-network overhead fitted on whole-network measurements of the same fingerprint.

Blocks the database lacks are measured on the spot (this machine), or estimated from the measured
blocks (`nasearch.latency.estimate`), or reported as missing.

Measured whole network ≈ scale · Σ units + offset. The offset takes up what units measured alone do
not see (the neck's concatenations, one session call per network rather than per unit, and layout
reorders at unit boundaries), the scale takes up effects proportional to the work (cache reuse across
units). The fit minimises relative errors, because the accuracy target is relative.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from nasearch.errors import OPTION, InputError
from nasearch.latency.backend import Backend
from nasearch.latency.db import LatencyDB, NetworkRow
from nasearch.latency.estimate import MIN_SAMPLES, BlockEstimator
from nasearch.latency.fingerprint import Fingerprint
from nasearch.latency.profile import measure_arch_units
from nasearch.latency.units import arch_units
from nasearch.space import Architecture

MIN_GROUP = 3
SCALE_BOUNDS = (0.5, 1.5)


@dataclass(frozen=True)
class OverheadFit:
    """measured ≈ scale · Σ units + offset_ms, fitted on `networks` whole-network measurements."""

    scale: float
    offset_ms: float
    networks: int
    kind: str  # "scale+offset" | "offset" | "none"
    max_rel_error: float | None = None  # of the fit on its own networks

    def apply(self, units_ms: float) -> float:
        return self.scale * units_ms + self.offset_ms

    def as_dict(self) -> dict:
        return asdict(self)


def fit_overhead(units_ms: list[float], measured_ms: list[float]) -> OverheadFit:
    """Least squares on relative errors; with fewer than two networks, an offset or nothing."""
    n = len(units_ms)
    if n == 0:
        return OverheadFit(1.0, 0.0, 0, "none")
    s, m = np.asarray(units_ms, dtype=float), np.asarray(measured_ms, dtype=float)
    if n == 1 or np.ptp(s) <= 1e-9 * max(float(s.max()), 1e-9):
        # an offset alone (relative-error weighted mean of the differences)
        w = 1.0 / m**2
        offset = float(np.sum(w * (m - s)) / np.sum(w))
        return _with_error(OverheadFit(1.0, offset, n, "offset"), s, m)
    a = np.stack([s / m, 1.0 / m], axis=1)
    (scale, offset), *_ = np.linalg.lstsq(a, np.ones_like(m), rcond=None)
    if not SCALE_BOUNDS[0] <= scale <= SCALE_BOUNDS[1]:
        scale = float(np.clip(scale, *SCALE_BOUNDS))
        offset = float(np.sum((m - scale * s) / m**2) / np.sum(1.0 / m**2))
    return _with_error(OverheadFit(float(scale), float(offset), n, "scale+offset"), s, m)


def _with_error(fit: OverheadFit, s: np.ndarray, m: np.ndarray) -> OverheadFit:
    err = float(np.max(np.abs((fit.scale * s + fit.offset_ms) / m - 1.0)))
    return OverheadFit(fit.scale, fit.offset_ms, fit.networks, fit.kind, round(err, 4))


def network_points(
    db: LatencyDB, fp_id: str, imgsz: int | None = None, n_units: int | None = None
) -> list[tuple[NetworkRow, float]]:
    """Whole networks of a fingerprint whose units are all stored, with their unit sums; restricted to
    the same input size and unit count when at least `MIN_GROUP` such networks exist."""
    units = db.units(fp_id)
    points = [
        (row, sum(units[s].median_ms for s in row.units))
        for row in db.networks(fp_id)
        if all(s in units for s in row.units)
    ]
    same = [
        p for p in points if (imgsz is None or p[0].imgsz == imgsz) and (n_units is None or len(p[0].units) == n_units)
    ]
    return same if len(same) >= MIN_GROUP else points


def overhead_for(db: LatencyDB, fp_id: str, imgsz: int | None = None, n_units: int | None = None) -> OverheadFit:
    points = network_points(db, fp_id, imgsz, n_units)
    return fit_overhead([s for _, s in points], [row.median_ms for row, _ in points])


def select_fingerprint(
    db: LatencyDB,
    local: Fingerprint | None,
    precision: str,
    batch: int,
    backend: str | None = None,
    threads: int | None = None,
) -> Fingerprint:
    """The fingerprint to predict for: this machine's when the database has it, else the only stored
    one matching the request; anything else is an input error that lists what the database holds."""
    stored = [fp for fp, _, _ in db.fingerprints()]
    if local is not None and any(fp.id == local.id for fp in stored):
        return local
    matches = [
        fp
        for fp in stored
        if fp.precision == precision
        and fp.batch == batch
        and (backend is None or fp.backend == backend)
        and (threads is None or fp.threads == threads)
    ]
    if len(matches) == 1:
        return matches[0]
    held = "; ".join(fp.label() for fp in stored) or "nothing"
    wanted = f"latencies for {backend or 'any backend'}, {precision}, batch {batch}"
    if threads is not None:
        wanted += f", {threads} thread(s)"
    if not matches:
        raise InputError(str(db.path), "fingerprints", wanted + " (run `nasearch latency profile`)", held)
    raise InputError(
        str(db.path),
        "fingerprints",
        wanted + " from one device (give --backend/--threads)",
        f"{len(matches)} matches: {held}",
    )


MISSING_MODES = ("measure", "estimate", "error")


def predict_from_db(
    db: LatencyDB,
    fp: Fingerprint,
    arch: Architecture,
    imgsz: int,
    backend: Backend | None = None,
    missing: str = "measure",
) -> dict:
    """Predicted latency of `arch` at `imgsz` for fingerprint `fp`.

    Blocks the database lacks are, by `missing`: `measure`d now and stored (only with `backend`, this
    machine's backend for `fp`), `estimate`d from the measured blocks of the same fingerprint (nothing
    is measured or written), or an input `error` naming how many are missing."""
    if missing not in MISSING_MODES:
        raise InputError(OPTION, "missing", " | ".join(MISSING_MODES), repr(missing))
    arch = arch if imgsz == arch.data["imgsz"] else arch.with_overrides(imgsz=imgsz)
    _, units = arch_units(arch, imgsz, fp.batch)
    stored = db.units(fp.id, [u.signature for u in units])
    absent = {u.signature for u in units if u.signature not in stored}
    measured_now = estimated = 0
    estimates: dict[str, float] = {}
    if absent and missing == "measure" and backend is not None and backend.fingerprint().id == fp.id:
        measured_now = measure_arch_units(arch, imgsz, backend, db, fp.id, absent)
        stored = db.units(fp.id, [u.signature for u in units])
    elif absent and missing == "estimate":
        estimator = BlockEstimator.fit(db.units(fp.id).values())
        if not estimator.can_estimate():
            raise InputError(
                str(db.path),
                "units",
                f"at least {MIN_SAMPLES} measured blocks to estimate from for {fp.label()}",
                f"{len(stored)}",
            )
        for u in units:
            if u.signature in absent:
                estimates[u.signature] = estimator.estimate(u.kind, u.block_type, u.features)
        estimated = sum(1 for u in units if u.signature in absent)
    elif absent:
        how = "measure them: needs this machine's backend" if missing == "measure" else "or --missing estimate"
        raise InputError(
            str(db.path),
            "units",
            f"every block of {arch.name} at {imgsz} px profiled for {fp.label()} "
            f"(run `nasearch latency profile` on that device, {how})",
            f"{len(absent)} of {len({u.signature for u in units})} distinct blocks missing",
        )
    units_ms = float(
        sum(stored[u.signature].median_ms if u.signature in stored else estimates[u.signature] for u in units)
    )
    fit = overhead_for(db, fp.id, imgsz, len(units))
    predicted = fit.apply(units_ms)
    method = "blocks" + ("+estimates" if estimated else "") + ("+overhead" if fit.kind != "none" else "")
    return {
        "target": f"{fp.backend}:{fp.device}",
        "precision": fp.precision,
        "imgsz": imgsz,
        "batch": fp.batch,
        "predicted_ms": round(predicted, 6),
        "method": method,
        "measured": False,
        "name": arch.name,
        "arch_hash": arch.hash,
        "units_ms": round(units_ms, 6),
        "units": len(units),
        "units_measured_now": measured_now,
        "units_estimated": estimated,
        "overhead": fit.as_dict(),
        "fingerprint_id": fp.id,
        "device": fp.label(),
    }


def predict_latency(
    db_path: str | Path,
    arch: Architecture,
    imgsz: int,
    local: Callable[[], Backend],
    precision: str,
    batch: int,
    backend: str | None = None,
    threads: int | None = None,
    missing: str = "auto",
) -> dict:
    """The one latency policy of the search and `nasearch latency predict`: this machine's backend,
    or the database's stored figures, or estimates.

    `local()` makes this machine's backend for the request (an InputError: it cannot run here, and only
    stored figures are used). The fingerprint is this machine's when the database holds it, else the one
    stored match (`select_fingerprint`). Missing blocks are handled by `missing` as in `predict_from_db`;
    `auto` measures them when the fingerprint is this machine's and estimates them otherwise.
    """
    if missing not in ("auto", *MISSING_MODES):
        raise InputError(OPTION, "missing", "auto | " + " | ".join(MISSING_MODES), repr(missing))
    try:
        here_backend: Backend | None = local()
        local_fp = here_backend.fingerprint()
    except InputError:
        here_backend, local_fp = None, None
    with LatencyDB(db_path, create=False) as database:
        fp = select_fingerprint(database, local_fp, precision, batch, backend, threads)
        here = local_fp is not None and fp.id == local_fp.id
        if missing == "auto":
            missing = "measure" if here else "estimate"
        return predict_from_db(database, fp, arch, imgsz, here_backend if here else None, missing)
