"""Proxy trust report: how well each accuracy proxy ranks architectures by their long-trained mAP.

Architectures are sampled from the main space and scaled for the CPU (`nasearch.proxy.scale.scale_arch`:
widths × WIDTH, depths × DEPTH, the synthetic dataset's classes, IMGSZ px). Each is scored by every
zero-cost proxy, trained briefly at two budgets (short-training proxy mAP), and trained long; the report
gives Spearman and Kendall of every proxy against the long-trained mAP and which proxies beat the #params
and FLOPs baselines. Long training uses the same recipe as the short proxy, only a larger budget. The
architectures of `--noise-archs` are trained long twice (seeds SEED and SEED + 1); when that is all of them,
the target is the mean of the two trainings (a single training's mAP moves by a few points with the seed),
and the table also gives each proxy against each single training, and the two trainings against each other:
the ceiling of any proxy judged by one training.

Statistics follow the frozen protocol of `nasearch.stats` (percentile bootstrap over architectures, seeded,
95% intervals): every Spearman and Kendall carries its interval, and a proxy "beats" FLOPs or #params only when
the interval of the paired Spearman difference (same resampled architectures) lies above zero.

Architectures i = 0.. are Space.sample(sample_seed + i). Seeds 0..19 were used by the runs published before the
protocol was frozen; the default sample seed (1000) starts a fresh set that no decision has seen. `--data`
scores on another data set (e.g. the trees set of `nasearch data trees`) instead of the synthetic one.

Every finished measurement is cached in OUT/results-*.json (atomic writes), so a killed run resumes where it
stopped; `--shard K/N` splits the architectures over N processes that share OUT. After every architecture
the JSON summary (OUT/trust.json) and the table in benchmarks/README.md are rewritten from all shards.

    .venv/bin/python benchmarks/proxy_trust.py --out runs/proxy_trust            # run or resume
    .venv/bin/python benchmarks/proxy_trust.py --out runs/proxy_trust --report   # table from the cache only
    .venv/bin/python benchmarks/proxy_trust.py --out runs/proxy_trust --check 7:long_seed2
        # retrain architecture 7's second long training with its recorded settings and seed; prints both values
    .venv/bin/python benchmarks/proxy_trust.py --from-readme proxy-trust --archs 20 --sample-seed 0 --report
        # statistics recomputed from a committed per-architecture table (values as rounded there)
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.readme_sections import read_section, write_section  # noqa: E402
from nasearch import atomic  # noqa: E402
from nasearch import stats as protocol  # noqa: E402
from nasearch.data import ensure_synthetic, load_split  # noqa: E402
from nasearch.errors import InputError, exit_bad_input  # noqa: E402
from nasearch.onnxio.isa import this_cpu_isa  # noqa: E402
from nasearch.proxy import registry  # noqa: E402
from nasearch.proxy.scale import scale_arch  # noqa: E402
from nasearch.space import Architecture, load_space  # noqa: E402

ZERO_COST = ("entropy", "zen", "naswot", "synflow", "params", "flops")
BASELINES = ("params", "flops")
# Ensembles are fixed before any result is seen: the mean rank of their members (higher rank = better).
ENSEMBLES: dict[str, tuple[str, ...]] = {
    "vote(entropy, zen, naswot, synflow)": ("entropy", "zen", "naswot", "synflow"),
    "vote(short_b, flops)": ("short_b", "flops"),
}


@dataclass(frozen=True)
class Settings:
    space: str
    archs: int
    sample_seed: int
    width: float
    depth: float
    head_width: float
    imgsz: int
    data_images: int
    data_seed: int
    long_epochs: int
    short_a: tuple[int, int]  # (train images, epochs)
    short_b: tuple[int, int]
    batch: int
    lr: float
    seed: int
    noise_archs: int
    data: str | None = None  # a dataset (dir / data.yaml); None: the synthetic set of data_images, data_seed

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}


def parse_budget(text: str) -> tuple[int, int]:
    images, _, epochs = text.partition("x")
    return int(images), int(epochs)


def parse_args(argv: list[str] | None = None) -> tuple[Settings, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default=str(ROOT / "search_spaces" / "yolo_nas_space.yaml"))
    p.add_argument("--archs", type=int, default=30)
    p.add_argument(
        "--sample-seed",
        type=int,
        default=1000,
        help="arch i is Space.sample(sample_seed + i); 0..19 were used before the protocol was frozen",
    )
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--depth", type=float, default=0.5)
    p.add_argument("--head-width", type=float, default=0.5, help="width multiplier of the head")
    p.add_argument("--imgsz", type=int, default=128)
    p.add_argument("--data-images", type=int, default=800)
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--long-epochs", type=int, default=20, help="epochs over the whole train split")
    p.add_argument("--short-a", default="680x1", help="short budget A: IMAGESxEPOCHS")
    p.add_argument("--short-b", default="680x4", help="short budget B: IMAGESxEPOCHS")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-3, help="AdamW peak learning rate of every training")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument(
        "--noise-archs",
        type=int,
        default=30,
        help="archs also trained long with seed + 1 (all of them: the target is the mean of both)",
    )
    p.add_argument("--out", default=str(ROOT / "runs" / "proxy_trust"))
    p.add_argument("--readme", default=str(ROOT / "benchmarks" / "README.md"))
    p.add_argument("--tag", default="proxy-trust", help="README section between <!-- TAG:start/end -->")
    p.add_argument("--shard", default="0/1", help="K/N: this process takes the archs i with i %% N == K")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data", default=None, help="dataset directory or data.yaml (default: the synthetic set)")
    p.add_argument("--report", action="store_true", help="only rebuild the table from the cache")
    p.add_argument(
        "--check",
        default=None,
        metavar="INDEX[:MEASUREMENT]",
        help="measure one cached value again (default measurement: long) with its recorded seed; prints both",
    )
    p.add_argument(
        "--from-readme",
        default=None,
        metavar="TAG",
        help="with --report: recompute from the per-architecture table of README section TAG",
    )
    a = p.parse_args(argv)
    s = Settings(
        a.space,
        a.archs,
        a.sample_seed,
        a.width,
        a.depth,
        a.head_width,
        a.imgsz,
        a.data_images,
        a.data_seed,
        a.long_epochs,
        parse_budget(a.short_a),
        parse_budget(a.short_b),
        a.batch,
        a.lr,
        a.seed,
        a.noise_archs,
        a.data,
    )
    return s, a


# -- cache ------------------------------------------------------------------------------------------------
def write_json(doc: Any, path: Path) -> None:
    """Atomic: a kill never leaves a truncated cache."""
    atomic.write_text(path, json.dumps(doc, indent=1) + "\n")


def upgrade_settings(stored: dict[str, Any]) -> dict[str, Any]:
    """Settings saved before --head-width and --lr existed: the head scaled like the body, lr 2e-3."""
    return {"head_width": stored.get("width"), "lr": 2e-3, "data": None, **stored}


def same_measurements(stored: dict[str, Any], settings: Settings) -> bool:
    """Whether a cache holds measurements of these settings (how many archs get a second seed is not one)."""

    def key(d: dict[str, Any]) -> dict[str, Any]:
        # the space by file name: a cache committed from one checkout resumes in another
        out = {k: v for k, v in d.items() if k != "noise_archs"}
        if out.get("space"):
            out["space"] = Path(out["space"]).name
        return out

    return key(upgrade_settings(stored)) == key(settings.as_dict())


class Cache:
    """One shard's measurements: {arch hash: {"index", "name", "arch", measurement name: result}}."""

    def __init__(self, out: Path, shard: str, settings: Settings) -> None:
        self.path = out / f"results-{shard.replace('/', 'of')}.json"
        self.settings = settings
        doc = json.loads(self.path.read_text()) if self.path.exists() else {}
        if doc and not same_measurements(doc.get("settings", {}), settings):
            exit_bad_input(
                InputError(self.path, "settings", "the settings of this run (or use another --out)", "other settings")
            )
        self.entries: dict[str, dict[str, Any]] = doc.get("entries", {})

    def get(self, arch: Architecture, key: str) -> dict[str, Any] | None:
        return self.entries.get(arch.hash, {}).get(key)

    def put(self, index: int, arch: Architecture, key: str, value: dict[str, Any]) -> None:
        entry = self.entries.setdefault(arch.hash, {"index": index, "name": arch.name, "arch": arch.data})
        entry[key] = value
        write_json({"settings": self.settings.as_dict(), "entries": self.entries}, self.path)


def load_all_entries(out: Path, settings: Settings) -> list[dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {}
    for path in sorted(out.glob("results-*.json")):
        doc = json.loads(path.read_text())
        if same_measurements(doc.get("settings", {}), settings):
            for h, e in doc["entries"].items():
                entries.setdefault(h, {}).update(e)
    return sorted(entries.values(), key=lambda e: e["index"])


# -- measuring --------------------------------------------------------------------------------------------
def sample_archs(s: Settings, nc: int) -> list[Architecture]:
    """`archs` distinct architectures of the space, each scaled for the CPU."""
    space = load_space(s.space)
    out, seen, i = [], set(), 0
    while len(out) < s.archs:
        arch = scale_arch(
            space.sample(s.sample_seed + i), s.width, s.depth, nc=nc, imgsz=s.imgsz, head_width=s.head_width
        )
        i += 1
        if arch.hash not in seen:
            seen.add(arch.hash)
            out.append(arch)
    return out


def measure(
    cache: Cache, index: int, arch: Architecture, key: str, proxy: str, kwargs: dict[str, Any], log: Any
) -> None:
    """Score `arch` with `proxy` unless the cache has it; a failure is recorded, not raised."""
    if cache.get(arch, key) is not None:
        return
    try:
        r = registry.score(proxy, arch, **kwargs)
        value = {"value": r.value, "seconds": round(r.seconds, 2), "details": r.details, "isa": this_cpu_isa()}
    except (FloatingPointError, RuntimeError, ValueError) as exc:
        value = {"value": None, "error": f"{type(exc).__name__}: {exc}"[:300]}
    cache.put(index, arch, key, value)
    v = value["value"]
    log(
        f"[{index:02d}] {arch.name} {key}: {'failed: ' + value['error'] if v is None else f'{v:.4f}'}"
        f" ({value.get('seconds', 0)} s)"
    )


def plan(s: Settings, data: Path) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every measurement of an architecture: name -> (proxy, its keyword arguments). The run and `--check`
    both read it, so a check retrains exactly what the run trained."""
    train = {
        "data": str(data),
        "imgsz": s.imgsz,
        "seed": s.seed,
        "batch": s.batch,
        "lr": s.lr,
        "val_images": s.data_images,
    }
    long = {**train, "images": s.data_images, "epochs": s.long_epochs}  # images capped at the train split
    zero_cost = {name: (name, {"imgsz": s.imgsz, "seed": s.seed}) for name in ZERO_COST}
    return {
        **zero_cost,
        "short_a": ("short_train", {**train, "images": s.short_a[0], "epochs": s.short_a[1]}),
        "short_b": ("short_train", {**train, "images": s.short_b[0], "epochs": s.short_b[1]}),
        "long": ("short_train", long),
        "long_seed2": ("short_train", {**long, "seed": s.seed + 1}),
    }


def run_shard(s: Settings, args: argparse.Namespace, data: Path, archs: list[Architecture], log: Any) -> None:
    k, n = (int(v) for v in args.shard.split("/"))
    cache = Cache(Path(args.out), args.shard, s)
    todo = plan(s, data)
    mine = [(i, a) for i, a in enumerate(archs) if i % n == k]
    for i, arch in mine:  # zero-cost first: cheap, and the table is useful early
        for name in ZERO_COST:
            measure(cache, i, arch, name, *todo[name], log)
    for i, arch in mine:
        for key in ("short_a", "short_b", "long"):
            measure(cache, i, arch, key, *todo[key], log)
        write_report(s, args, log)
    noise = [(i, a) for i, a in enumerate(archs[: s.noise_archs]) if i % n == k]
    for i, arch in noise:
        measure(cache, i, arch, "long_seed2", *todo["long_seed2"], log)
        write_report(s, args, log)


def check(s: Settings, args: argparse.Namespace, data: Path, archs: list[Architecture], log: Any) -> dict[str, Any]:
    """Measure one cached value again with its recorded settings and seed (the cache is not touched)."""
    index_text, _, key = args.check.partition(":")
    key = key or "long"
    todo = plan(s, data)
    if not index_text.isdigit() or int(index_text) >= len(archs) or key not in todo:
        expected = f"INDEX[:MEASUREMENT] with INDEX < {len(archs)} and MEASUREMENT one of {', '.join(todo)}"
        exit_bad_input(InputError("--check", "check", expected, repr(args.check)))
    index = int(index_text)
    arch = archs[index]
    entries = load_all_entries(Path(args.out), s)
    recorded = next((e.get(key) for e in entries if e["index"] == index and e["name"] == arch.name), None)
    if not recorded or recorded.get("value") is None:
        exit_bad_input(InputError(args.out, f"{index}.{key}", "a recorded value to check", "none"))
    proxy, kwargs = todo[key]
    r = registry.score(proxy, arch, **kwargs)
    doc = {
        "index": index,
        "name": arch.name,
        "measurement": key,
        "seed": kwargs["seed"],
        "recorded": recorded["value"],
        "recorded_isa": recorded.get("isa", "unrecorded"),
        "reproduced": r.value,
        "reproduced_isa": this_cpu_isa(),
        "difference": r.value - recorded["value"],
        "seconds": round(r.seconds, 2),
    }
    log(
        f"check [{doc['index']:02d}] {arch.name} {key} (seed {doc['seed']}): recorded {doc['recorded']:.4f} "
        f"({doc['recorded_isa']}), reproduced {doc['reproduced']:.4f} ({doc['reproduced_isa']}), "
        f"difference {doc['difference']:+.4f}"
    )
    print(json.dumps(doc))
    return doc


# -- report -----------------------------------------------------------------------------------------------
def proxy_columns(entries: list[dict[str, Any]]) -> list[str]:
    return [*ZERO_COST, "short_a", "short_b"]


def column(entries: list[dict[str, Any]], key: str) -> list[float | None]:
    return [(e.get(key) or {}).get("value") for e in entries]


def mean_rank(entries: list[dict[str, Any]], members: tuple[str, ...]) -> list[float | None]:
    cols = [column(entries, m) for m in members]
    ok = [all(c[i] is not None for c in cols) for i in range(len(entries))]
    ranks = [stats.rankdata([c[i] for i in range(len(entries)) if ok[i]]) for c in cols]
    mean = [sum(r) / len(r) for r in zip(*ranks, strict=True)] if ranks and any(ok) else []
    it = iter(mean)
    return [next(it) if good else None for good in ok]


def correlate(xs: list[float | None], ys: list[float | None]) -> dict[str, Any]:
    pairs = [(x, y) for x, y in zip(xs, ys, strict=True) if x is not None and y is not None]
    if len(pairs) < 3:
        return {"n": len(pairs), "spearman": None, "kendall": None, "p": None}
    x, y = zip(*pairs, strict=True)
    rho, p = stats.spearmanr(x, y)
    tau, _ = stats.kendalltau(x, y)
    fix = lambda v: None if v is None or math.isnan(v) else round(float(v), 3)  # noqa: E731
    return {"n": len(pairs), "spearman": fix(rho), "kendall": fix(tau), "p": fix(p)}


def intervals(
    values: list[float | None], target: list[float | None], baselines: dict[str, list[float | None]]
) -> dict[str, Any] | None:
    """The protocol's intervals: Spearman, Kendall, and the paired Spearman difference against each baseline."""
    x, t = protocol.complete(values, target)
    if len(x) < 3:
        return None
    out = {"spearman": protocol.correlation(x, t).as_dict(), "kendall": protocol.correlation(x, t, "kendall").as_dict()}
    for name, base in baselines.items():
        if base is values:
            continue
        xs, bs, ts = protocol.complete(values, base, target)
        out[f"vs_{name}"] = protocol.correlation_difference(ts, xs, bs).as_dict()
    return out


def mean_of_seeds(first: list[float | None], second: list[float | None]) -> list[float | None]:
    return [None if a is None or b is None else (a + b) / 2 for a, b in zip(first, second, strict=True)]


def summarize(s: Settings, entries: list[dict[str, Any]]) -> dict[str, Any]:
    first, second = column(entries, "long"), column(entries, "long_seed2")
    two_seeds = s.noise_archs >= s.archs  # every architecture trained twice: the target is their mean
    target = mean_of_seeds(first, second) if two_seeds else first
    rows: dict[str, dict[str, Any]] = {}
    scored = [(key, column(entries, key)) for key in proxy_columns(entries)]
    scored += [(name, mean_rank(entries, members)) for name, members in ENSEMBLES.items()]
    columns = dict(scored)
    baselines = {b: columns[b] for b in BASELINES}
    for key, values in scored:
        secs = [v for v in ((e.get(key) or {}).get("seconds") for e in entries) if v is not None]
        rows[key] = {
            **correlate(values, target),
            "median_seconds": round(sorted(secs)[len(secs) // 2], 2) if secs else None,
        }
        if two_seeds:
            rows[key]["spearman_seed0"] = correlate(values, first)["spearman"]
            rows[key]["spearman_seed1"] = correlate(values, second)["spearman"]
        ci = intervals(values, target, baselines)
        rows[key]["intervals"] = ci
        # "beats" = the interval of the Spearman difference excludes zero against every baseline
        rows[key]["beats_baselines"] = (
            None if ci is None else key not in BASELINES and all(ci[f"vs_{b}"]["verdict"] == "beats" for b in BASELINES)
        )
    noise = [(a, b) for a, b in zip(first, second, strict=True) if a is not None and b is not None]
    done = [v for v in target if v is not None]
    long_map = {"min": min(done), "max": max(done), "mean": round(sum(done) / len(done), 3)} if done else None
    seed_noise = (
        {
            "pairs": noise,
            "mean_abs_diff": round(sum(abs(a - b) for a, b in noise) / len(noise), 3),
            "spearman": correlate(first, second)["spearman"],
            "spearman_interval": protocol.correlation(*protocol.complete(first, second)).as_dict()
            if len(noise) >= 3
            else None,
        }
        if noise
        else None
    )
    return {
        "settings": s.as_dict(),
        "archs_long_trained": len(done),
        "archs_total": s.archs,
        "protocol": {
            "module": "nasearch.stats",
            "version": protocol.PROTOCOL_VERSION,
            "method": "percentile bootstrap over architectures",
            "resamples": protocol.RESAMPLES,
            "seed": protocol.SEED,
            "confidence": protocol.CONFIDENCE,
        },
        "target_seeds": 2 if two_seeds else 1,
        "target": f"mean of seeds {s.seed} and {s.seed + 1}" if two_seeds else f"seed {s.seed}",
        "long_map": long_map,
        "seed_noise": seed_noise,
        "trainings_by_cpu": trainings_by_cpu(entries),
        "proxies": rows,
        "archs": [arch_row(e) for e in entries],
    }


def trainings_by_cpu(entries: list[dict[str, Any]]) -> dict[str, int]:
    """How many finished trainings each CPU path produced (`unrecorded`: cached before the path was kept)."""
    counts: dict[str, int] = {}
    for e in entries:
        for key in ("short_a", "short_b", "long", "long_seed2"):
            doc = e.get(key) or {}
            if doc.get("value") is not None:
                isa = doc.get("isa", "unrecorded")
                counts[isa] = counts.get(isa, 0) + 1
    return dict(sorted(counts.items()))


def arch_row(entry: dict[str, Any]) -> dict[str, Any]:
    keys = [*proxy_columns([entry]), "long", "long_seed2"]
    values = {k: (entry.get(k) or {}).get("value") for k in keys}
    return {"index": entry["index"], "name": entry["name"], **values}


def fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def ci(interval: dict[str, Any] | None, digits: int = 3) -> str:
    """`0.864 [0.71, 0.95]` from an Interval's dict."""
    if not interval:
        return "–"
    return f"{interval['estimate']:.{digits}f} [{interval['low']:.2f}, {interval['high']:.2f}]"


def render(summary: dict[str, Any], command: str, measured: str | None = None) -> str:
    s = summary["settings"]
    two = summary["target_seeds"] == 2
    target = (
        f"the target is the mean of two trainings, seeds {s['seed']} and {s['seed'] + 1}"
        if two
        else f"one training, seed {s['seed']}"
    )
    pr = summary["protocol"]
    data = (
        f"- Data: `{s['data']}`."
        if s.get("data")
        else f"- Data: synthetic shapes dataset, {s['data_images']} images at {s['imgsz']} px "
        f"(seed {s['data_seed']}, 85% train / 15% val)."
    )
    lines = [
        measured
        or (
            f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()} CPU, 1 thread "
            f"(torch {torch.__version__}). Reproduce: `{command}`."
        ),
        "",
        f"- Statistics: `{pr['module']}` protocol v{pr['version']}: {pr['method']}, {pr['resamples']} "
        f"resamples, seed {pr['seed']}, {pr['confidence']:.0%} intervals in brackets. A proxy beats a baseline "
        "only when the interval of the paired Spearman difference (same resampled architectures) excludes zero.",
        f"- Architectures: {summary['archs_long_trained']} of {s['archs']} long-trained so far, sampled "
        f"from `{Path(s['space']).name}` (Space.sample(seed) for seeds {s['sample_seed']}..) and scaled "
        f"for the CPU with `scale_arch`: widths × {s['width']} (multiples of 8), head widths × "
        f"{s['head_width']}, depths × {s['depth']}, the data set's classes, {s['imgsz']} px.",
        data,
        f"- Long training (the target): all train images × {s['long_epochs']} epochs, AdamW lr {s['lr']:g}, "
        f"warm-up + cosine, mosaic, batch {s['batch']}; COCO mAP50-95 on the whole val split; "
        f"{target}.",
        f"- Short training: A = {s['short_a'][0]} images × {s['short_a'][1]} epochs, "
        f"B = {s['short_b'][0]} images × {s['short_b'][1]} epochs (same recipe, same val split).",
        "- Zero-cost scores at the same resolution, one fresh initialisation (seed 0) per architecture.",
    ]
    if len(summary.get("trainings_by_cpu") or {}) > 1:
        parts = ", ".join(f"{n} on {isa}" for isa, n in summary["trainings_by_cpu"].items())
        lines.append(f"- Trainings by CPU path (the run was resumed on another machine): {parts}.")
    if summary["long_map"]:
        m = summary["long_map"]
        lines.append(f"- Long-trained mAP50-95: {m['min']:.2f} – {m['max']:.2f} (mean {m['mean']:.2f}).")
    if summary["seed_noise"]:
        n = summary["seed_noise"]
        rho = ci(n.get("spearman_interval")) if n.get("spearman_interval") else fmt(n["spearman"])
        lines.append(
            f"- Seed noise: two long trainings of the same architecture (seeds {s['seed']} and "
            f"{s['seed'] + 1}) differ by {n['mean_abs_diff']:.2f} mAP50-95 points on average and rank "
            f"{len(n['pairs'])} architectures with Spearman {rho} against each other: "
            "the most a proxy can reach when judged by one training."
        )
    header = (
        "| proxy | n | Spearman [95% CI] | Kendall [95% CI] | Δ Spearman vs FLOPs [95% CI] | "
        "Δ Spearman vs #params [95% CI] | beats both |"
    )
    header += " Spearman vs seed 0 only | vs seed 1 only |" if two else ""
    header += " median s/arch |"
    lines += ["", header, "|" + "---|" * (header.count("|") - 1)]
    for name, r in summary["proxies"].items():
        single = f" {fmt(r['spearman_seed0'])} | {fmt(r['spearman_seed1'])} |" if two else ""
        iv = r.get("intervals") or {}
        lines.append(
            f"| {name} | {r['n']} | {ci(iv.get('spearman'))} | {ci(iv.get('kendall'))} | "
            f"{ci(iv.get('vs_flops'))} | {ci(iv.get('vs_params'))} | {fmt(r['beats_baselines'])} |"
            f"{single} {fmt(r['median_seconds'], 1)} |"
        )
    return "\n".join([*lines, "", *arch_table(summary["archs"])])


def arch_table(archs: list[dict[str, Any]]) -> list[str]:
    """Every architecture's raw values, so a reader can recompute any correlation."""
    keys = [*ZERO_COST, "short_a", "short_b", "long", "long_seed2"]
    title = "Per-architecture values (params in M, flops in GFLOPs, mAP in percent points)"
    rows = [
        f"<details><summary>{title}</summary>",
        "",
        "| # | architecture | " + " | ".join(keys) + " |",
        "|---|---|" + "---|" * len(keys),
    ]
    for a in archs:
        values = " | ".join(fmt(a[k], 3 if k in ("params", "flops", "short_a", "short_b") else 2) for k in keys)
        rows.append(f"| {a['index']} | {a['name']} | {values} |")
    return [*rows, "", "</details>"]


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def entries_from_readme(path: Path, tag: str) -> tuple[list[dict[str, Any]], str]:
    """The per-architecture table of a committed README section as cache entries, and its `Measured` line.

    The table's values are rounded (mAP to 0.01): statistics recomputed from it can differ from the first
    report's in the third decimal. Each proxy's median seconds come from the section's proxy table.
    """
    section = read_section(path, tag)
    lines = section.strip().splitlines()
    measured = lines[0].strip()
    keys: list[str] = []
    seconds: dict[str, float | None] = {}
    entries: list[dict[str, Any]] = []
    for line in lines:
        if not line.startswith("|") or line.startswith("|---"):
            continue
        row = cells(line)
        if row[0] == "proxy":
            continue
        if row[0] == "#":
            keys = row[2:]
            continue
        if not keys:  # the proxy table comes first: its last column is the median seconds per architecture
            seconds[row[0]] = None if row[-1] == "–" else float(row[-1])
            continue
        value = lambda c: None if c == "–" else float(c)  # noqa: E731
        entry: dict[str, Any] = {"index": int(row[0]), "name": row[1]}
        for k, c in zip(keys, row[2:], strict=True):
            entry[k] = {"value": value(c), "seconds": seconds.get(k)}
        entries.append(entry)
    if not entries:
        exit_bad_input(InputError(path, tag, "a per-architecture table in the section", "none"))
    return entries, measured


def write_report(s: Settings, args: argparse.Namespace, log: Any) -> None:
    out = Path(args.out)
    defaults = parse_args([])[0]
    flags = [
        f"--{k.replace('_', '-')} {'x'.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in s.as_dict().items()
        if v != defaults.as_dict()[k]
    ]
    # the exact command: the output folder and README section too (the defaults name another section)
    shown_out = out.resolve().relative_to(ROOT) if out.resolve().is_relative_to(ROOT) else out
    command = " ".join(["python benchmarks/proxy_trust.py", *flags, f"--out {shown_out}", f"--tag {args.tag}"])
    measured = None
    if args.from_readme:
        entries, first = entries_from_readme(Path(args.readme), args.from_readme)
        first = first.split(" Reproduce:", 1)[0]
        measured = (
            f"{first} Reproduce: `{command}`. Intervals recomputed from the per-architecture table "
            f"below (its values as rounded there): `{command} --from-readme {args.from_readme} --report`."
        )
        name = f"trust-{args.from_readme}.json"
    else:
        entries, name = load_all_entries(out, s), "trust.json"
    summary = summarize(s, entries)
    write_json(summary, out / name)
    write_section(Path(args.readme), args.tag, render(summary, command, measured))
    log(f"report: {summary['archs_long_trained']}/{s.archs} long-trained -> {out / name}")


def main(argv: list[str] | None = None) -> None:
    s, args = parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)

    def log(msg: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)

    if args.report:
        write_report(s, args, log)
        return
    if s.data:
        data = Path(s.data)
        nc = load_split(data, "val").nc
    else:
        data = ensure_synthetic(
            out / f"data-{s.data_images}x{s.imgsz}-seed{s.data_seed}", s.data_images, s.imgsz, s.data_seed
        )
        nc = 10
    archs = sample_archs(s, nc=nc)
    if args.check is not None:
        check(s, args, data, archs, log)
        return
    for i, a in enumerate(archs):
        a.save(out / "archs" / f"{i:02d}-{a.hash}.yaml")
    run_shard(s, args, data, archs, log)
    write_report(s, args, log)


if __name__ == "__main__":
    main()
