"""benchmarks/payoff.py end to end on a tiny configuration: cache, resume, --report, shards, the paired gain."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from nasearch import yamlio
from tests.conftest import ROOT
from tests.fixtures import benchmark_script

payoff = benchmark_script("payoff")

TINY = """name: payoff_tiny
space: {space}
imgsz: 64
scale: {{width: 0.5, depth: 0.5}}
nc: 10
dataset:
  synthetic: {{images: 24, imgsz: 64, seed: 0, cache: {cache}}}
objectives:
  latency: {{source: measure, backend: onnxruntime, precision: fp32, batch: 1, threads: 1}}
  accuracy:
    screen: {{proxy: params}}
presets: false
sampler: random
trials: 3
seed: 0
executor: {{kind: local, workers: 1}}
"""
MARKERS = "# Benchmarks\n\n## Payoff\n\n<!-- payoff-synth:start -->\n<!-- payoff-synth:end -->\n\nafter\n"


def section(readme: Path) -> str:
    return readme.read_text().split("<!-- payoff-synth:start -->")[1].split("<!-- payoff-synth:end -->")[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny run: a 3-trial search of the tiny space, two presets, one seed, one epoch, one latency round."""
    tmp = tmp_path_factory.mktemp("payoff")
    exp = tmp / "exp.yaml"
    exp.write_text(TINY.format(space=ROOT / "search_spaces" / "tiny_space.yaml", cache=tmp / "data"))
    readme = tmp / "README.md"
    readme.write_text(MARKERS)
    argv = ["--data", "synth", "--experiment", str(exp), "--out", str(tmp / "out"), "--seeds", "0"]
    argv += ["--epochs", "1", "--close-mosaic", "0", "--rounds", "1", "--presets", "yolov8n", "yolov6n"]
    argv += ["--readme", str(readme), "--figures", str(tmp / "fig")]
    payoff.main(argv)
    return {"argv": argv, "out": tmp / "out", "readme": readme, "fig": tmp / "fig"}


def no_commands(monkeypatch):
    """Make any `nasearch` command (search, train) fail the test: a cached run must not start one."""
    calls: list[list[str]] = []

    def refuse(args):
        calls.append(args)
        raise AssertionError(f"ran nasearch {args}")

    monkeypatch.setattr(payoff, "nasearch", refuse)
    return calls


def test_end_to_end_writes_models_curves_latency_and_the_table(run):
    out = run["out"]
    models = json.loads((out / "models.json").read_text())
    kinds = [m["kind"] for m in models]
    assert kinds[:2] == ["preset", "preset"] and "suite" in kinds
    targets = json.loads((out / "targets.json").read_text())
    assert targets["targets_ms"] == pytest.approx(
        [1.02 * p["search_latency_ms"] for p in targets["presets"].values()], abs=1e-4
    )
    exp = (out / "experiment.yaml").read_text()
    assert "latency_targets_ms" in exp and "tiny_space.yaml" in exp
    # the search's limit: the suite's largest target, with headroom for one slow measurement
    assert yamlio.loads(exp)["constraints"]["latency_ms"] == pytest.approx(1.5 * max(targets["targets_ms"]))
    latency = json.loads((out / "latency.json").read_text())
    assert latency["fingerprint"]["clock"] == "wall" and latency["fingerprint"]["threads"] == 1
    # the CPU of the targets and of the latency rounds is recorded, and the table says it
    assert targets["device"] == latency["fingerprint"]["device"] and targets["isa"] == latency["isa"]
    assert f"timed on {targets['device']} ({targets['isa']})" in section(run["readme"])
    for m in models:
        curve = json.loads((out / "train" / m["key"] / "seed0" / "curve.json").read_text())
        assert len(curve["curve"]) == 1 and curve["final_map"] is not None
        assert len(latency["rounds"][m["key"]]) == 1 and m["params"] > 0 and m["gflops"] > 0
    summary = json.loads((out / "payoff.json").read_text())
    assert {c["preset"] for c in summary["claims"]} == {"yolov8n", "yolov6n"}
    text = section(run["readme"])
    assert "| yolov8n (`yolov8n-w0.5d0.5`) | preset |" in text and "| suite1 (" in text
    assert run["readme"].read_text().endswith("after\n")  # only the section between the markers changes
    for name in ("payoff_synth.png", "payoff_synth_curves.png"):
        assert (run["fig"] / name).read_bytes()[:4] == b"\x89PNG"


def test_second_invocation_trains_nothing(run, monkeypatch):
    out = run["out"]
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.pt")}
    latency = (out / "latency.json").read_text()
    calls = no_commands(monkeypatch)
    payoff.main(run["argv"])
    for shard in ("0/2", "1/2"):
        payoff.main([*run["argv"], "--shard", shard])
    assert calls == [] and stamps and {p: p.stat().st_mtime_ns for p in out.rglob("*.pt")} == stamps
    assert (out / "latency.json").read_text() == latency


def test_report_rebuilds_the_same_table_from_the_cache(run, monkeypatch):
    before = section(run["readme"])
    run["readme"].write_text(MARKERS)
    (run["out"] / "payoff.json").unlink()
    no_commands(monkeypatch)
    payoff.main([*run["argv"], "--report"])
    assert section(run["readme"]) == before and (run["out"] / "payoff.json").is_file()


def test_shards_split_the_training_runs_disjointly_and_wait_for_shard_0(tmp_path, capsys):
    models = [{"key": k, "kind": "suite"} for k in ("yolov8n", "yolov6n", "yolo_nas_s", "suite1", "suite2")]
    every = payoff.jobs(models, [0, 1, 2])
    assert len(every) == len(set(every)) == 15
    for n in (1, 2, 3):
        parts = [payoff.shard_jobs(every, k, n) for k in range(n)]
        assert sorted(j for p in parts for j in p) == sorted(every)
        assert sum(len(p) for p in parts) == len(every)
    presets = [{"key": k, "kind": "preset"} for k in ("yolov8n", "yolov6n", "yolo_nas_s")]
    models = [*presets, {"key": "suite1", "kind": "suite"}, {"key": "suite2", "kind": "suite"}]
    every = payoff.jobs(models, [0, 1, 2])
    assert every[:9] == payoff.jobs(presets, [0, 1, 2])  # the presets' runs first
    first, second = (set(payoff.shard_jobs(every, k, 2)) for k in (0, 1))
    assert not first & second and {s for _, s in first} == {0, 1, 2}  # every seed in both shards
    exp = tmp_path / "exp.yaml"
    exp.write_text(TINY.format(space=ROOT / "search_spaces" / "tiny_space.yaml", cache=tmp_path / "data"))
    argv = ["--data", "synth", "--experiment", str(exp), "--out", str(tmp_path / "out"), "--shard", "1/2"]
    with pytest.raises(SystemExit) as exc:
        payoff.main([*argv, "--wait", "0"])
    assert exc.value.code == 2 and "run `--shard 0/2` first" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        payoff.parse_args(["--data", "synth", "--shard", "2/2"])


def _model(key: str, kind: str, latency: float, maps: list[float]) -> dict:
    return {"key": key, "kind": kind, "name": key, "params": 1, "gflops": 1.0, "latency": latency, "maps": maps}


def _cache(models: list[dict], seeds: list[int]) -> dict:
    def run(m, s):
        return {"final_map": m["maps"][s], "curve": [], "plateau": {"reached": True, "gain": 0.1}}

    return {
        "models": [{k: v for k, v in m.items() if k not in ("latency", "maps")} for m in models],
        "latency": {m["key"]: [m["latency"]] for m in models},
        "runs": {(m["key"], s): run(m, s) for m in models for s in seeds},
    }


def test_paired_gain_on_a_hand_made_cache():
    seeds = [0, 1, 2]
    models = [
        _model("p_fast", "preset", 1.00, [8.0, 9.0, 10.0]),
        _model("p_slow", "preset", 2.00, [12.0, 10.0, 14.0]),
        _model("p_none", "preset", 0.50, [5.0, 5.0, 5.0]),
        _model("a", "suite", 1.01, [10.0, 11.0, 12.0]),  # within 1.02x of p_fast: +2 on every seed
        _model("b", "suite", 2.05, [30.0, 30.0, 30.0]),  # over 1.02x of p_slow (2.04): never its competitor
        _model("c", "suite", 0.90, [9.0, 9.5, 10.5]),  # under p_fast too, but a has the higher mean
    ]
    summary = payoff.summarize(_cache(models, seeds), seeds)
    claims = {c["preset"]: c for c in summary["claims"]}
    fast = claims["p_fast"]
    assert fast["suite_model"] == "a" and fast["gains_by_seed"] == [2.0, 2.0, 2.0]
    assert fast["interval"]["low"] == fast["interval"]["high"] == 2.0 and fast["verdict"] == "beats"
    slow = claims["p_slow"]  # a is the best under 2.04 ms: gains -2, +1, -2, interval across zero
    assert slow["suite_model"] == "a" and slow["gains_by_seed"] == [-2.0, 1.0, -2.0]
    assert slow["interval"]["low"] < 0 < slow["interval"]["high"] and slow["verdict"] == "not shown"
    assert claims["p_none"]["suite_model"] is None and claims["p_none"]["verdict"].startswith("no suite model")
    rows = {r["key"]: r for r in summary["models"]}
    assert rows["a"]["map_mean"] == pytest.approx(11.0) and rows["a"]["map_sd"] == pytest.approx(1.0)
    assert rows["a"]["vs_preset"]["preset"] == "p_fast"  # the fastest preset at the same or higher latency
    assert rows["c"]["vs_preset"]["preset"] == "p_fast" and rows["c"]["vs_preset"]["verdict"] == "beats"
    assert "vs_preset" not in rows["b"]  # no preset at or above its latency
    worse = payoff.summarize(_cache([models[0], _model("d", "suite", 0.9, [1.0, 2.0, 3.0])], seeds), seeds)
    assert worse["claims"][0]["verdict"] == "worse"
    pending = _cache(models, seeds)
    pending["runs"][("c", 2)] = None  # one suite run still training: no verdict yet
    assert {c["verdict"] for c in payoff.summarize(pending, seeds)["claims"]} == {"incomplete"}
    one = payoff.summarize(_cache(models[:1] + models[3:4], [0]), [0])
    assert one["claims"][0]["interval"] is None and "one seed" in one["claims"][0]["verdict"]


def test_a_check_retrains_with_new_seeds_and_times_again_without_touching_the_table(run, tmp_path, capsys):
    import shutil

    check = benchmark_script("payoff_check")
    out = tmp_path / "out"
    shutil.copytree(run["out"], out)
    readme_before = run["readme"].read_text()
    models = json.loads((out / "models.json").read_text())
    suite = next(m["key"] for m in models if m["kind"] == "suite")
    check.main(["--data", "synth", "--out", str(out), "--rounds", "2", "yolov8n:5", f"{suite}:5"])
    printed = capsys.readouterr().out
    assert (out / "check" / "yolov8n" / "seed5" / "curve.json").exists()
    timed = json.loads((out / "check" / "latency.json").read_text())
    assert set(timed["rounds"]) == {"yolov8n", suite} and all(len(v) == 2 for v in timed["rounds"].values())
    assert "yolov8n seed 5: final mAP50-95" in printed and "(cached seeds " in printed and "ms in the table" in printed
    assert run["readme"].read_text() == readme_before and not (out / "train" / "yolov8n" / "seed5").exists()
    for bad, what in (["nope:5"], "a model of the payoff table"), (["yolov8n"], "a model key and a seed"):
        with pytest.raises(SystemExit) as exc:
            check.main(["--data", "synth", "--out", str(out), *bad])
        err = capsys.readouterr().err.strip()
        assert exc.value.code == 2 and len(err.splitlines()) == 1 and what in err


def test_the_latency_condition_is_judged_on_its_interval_over_rounds():
    seeds = [0, 1, 2]
    models = [_model("p", "preset", 1.0, [5.0, 5.0, 5.0]), _model("s", "suite", 1.0, [7.0, 8.0, 9.0])]
    steady, noisy = _cache(models, seeds), _cache(models, seeds)
    steady["latency"] = {"p": [1.00, 1.01, 0.99, 1.00, 1.02], "s": [0.90, 0.91, 0.89, 0.90, 0.92]}
    # the same medians (1.00 and 0.90) but the suite model's rounds reach 1.3x: "at <= 1.02x" is not shown
    noisy["latency"] = {"p": [1.00, 1.01, 0.99, 1.00, 1.02], "s": [0.90, 1.30, 0.89, 1.30, 0.80]}
    (ok,) = payoff.summarize(steady, seeds)["claims"]
    (bad,) = payoff.summarize(noisy, seeds)["claims"]
    assert ok["latency_ratio"] == bad["latency_ratio"] == pytest.approx(0.9)
    assert ok["latency_ratio_interval"]["high"] <= 1.02 and ok["verdict"] == "beats"
    assert bad["latency_ratio_interval"]["high"] > 1.02 and bad["verdict"].startswith("beats on mAP; latency")
    one_round = payoff.summarize(_cache(models, seeds), seeds)["claims"][0]
    assert one_round["latency_ratio_interval"] is None and one_round["verdict"] == "beats"
    assert "0.900 [0.8" in payoff.render(
        payoff.summarize(steady, seeds),
        {**payoff.settings(payoff.parse_args(["--data", "synth"])), "search_trials": None},
        "cmd",
        {"device": "cpu", "ort": "1", "plot": "a.png", "curves": "b.png"},
    )


def test_presets_are_scaled_as_the_search_scales_its_candidates():
    from nasearch.space.arch import load_arch

    ctx = payoff.search_context(ROOT / "experiments" / "quickstart.yaml")
    inside = payoff.scaled_preset(ctx, "yolo_nas_s")  # through the space's decisions, as the search enqueues it
    given = dataclasses.replace(ctx, space=payoff._Given(load_arch("yolo_nas_s"))).architecture({}, "yolo_nas_s")
    assert inside.hash == given.hash and inside.name == "yolo_nas_s-w0.25d0.5h0.5"
    v8 = payoff.scaled_preset(ctx, "yolov8n")
    assert v8.name == "yolov8n-w0.25d0.5h0.5" and v8.data["imgsz"] == 128 and v8.data["nc"] == 10


def test_a_shard_trains_nothing_while_shard_0_times_and_searches(run, tmp_path, capsys):
    import shutil

    out = tmp_path / "out"
    for name in ("settings.json", "targets.json", "archs/yolov8n.yaml", "archs/yolov6n.yaml"):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(run["out"] / name, out / name)
    argv = [*run["argv"], "--out", str(out), "--shard", "1/2", "--wait", "0"]
    with pytest.raises(SystemExit) as exc:
        payoff.main(argv)
    assert exc.value.code == 2 and "the search's model list" in capsys.readouterr().err
    assert not (out / "train").exists()  # the targets are known, but the search still measures latency


def test_other_shards_train_only_once_shard_0_has_timed_the_models(run, tmp_path, capsys):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(run["out"], out)
    shutil.rmtree(out / "train")
    doc = json.loads((out / "latency.json").read_text())
    doc["rounds"][next(iter(doc["rounds"]))] = []  # one model's round still to come
    (out / "latency.json").write_text(json.dumps(doc))
    with pytest.raises(SystemExit) as exc:
        payoff.main([*run["argv"], "--out", str(out), "--shard", "1/2", "--wait", "0"])
    assert exc.value.code == 2 and "latency rounds" in capsys.readouterr().err
    assert not (out / "train").exists()
    first_curve = min(p.stat().st_mtime_ns for p in run["out"].rglob("curve.json"))
    assert (run["out"] / "latency.json").stat().st_mtime_ns < first_curve  # timed before anything trained


def test_unfinished_latency_rounds_of_another_cpu_are_measured_again(run, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(run["out"], out)
    doc = json.loads((out / "latency.json").read_text())
    here = doc["fingerprint"]["device"]
    doc["fingerprint"]["device"] = "Another CPU"
    doc["rounds"] = {k: [999.0] for k in doc["rounds"]}
    (out / "latency.json").write_text(json.dumps(doc))
    a = payoff.parse_args([*run["argv"], "--out", str(out), "--rounds", "2"])
    models = json.loads((out / "models.json").read_text())
    again = payoff.stage_latency(a, models, lambda msg: None)
    assert again["fingerprint"]["device"] == here and again["isa"] in ("vnni", "no-vnni")
    assert all(len(v) == 2 and 999.0 not in v for v in again["rounds"].values())
    assert json.loads((out / "latency.json").read_text()) == again


def test_targets_timed_on_another_cpu_are_timed_again_and_the_old_ones_kept(run, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(run["out"], out)
    doc = json.loads((out / "targets.json").read_text())
    here = (doc["device"], doc["isa"])
    doc["device"], doc["targets_ms"] = "Another CPU", [999.0] * len(doc["targets_ms"])
    (out / "targets.json").write_text(json.dumps(doc))
    a = payoff.parse_args([*run["argv"], "--out", str(out)])
    ctx = payoff.search_context(a.experiment)
    again = payoff.stage_targets(a, ctx, lambda msg: None)
    assert (again["device"], again["isa"]) == here and 999.0 not in again["targets_ms"]
    (kept,) = (out / "superseded" / "targets").iterdir()
    assert json.loads(kept.read_text()) == doc  # nothing lost
    assert payoff.stage_targets(a, ctx, lambda msg: 1 / 0) == again  # this CPU's targets are reused as they are
    other = {**doc, "device": "A third CPU"}  # set aside within the same second: kept beside the first
    (out / "targets.json").write_text(json.dumps(other))
    payoff.stage_targets(a, ctx, lambda msg: None)
    kept_docs = [json.loads(f.read_text()) for f in (out / "superseded" / "targets").iterdir()]
    assert sorted(d["device"] for d in kept_docs) == ["A third CPU", "Another CPU"]


def test_a_cache_names_a_committed_experiment_relative_to_the_checkout(tmp_path):
    a = payoff.parse_args(["--data", "trees"])
    assert payoff.settings(a)["experiment"] == "experiments/trees_cpu.yaml"  # the same in a moved checkout
    assert payoff.checkout_relative(tmp_path / "x.yaml") == str(tmp_path / "x.yaml")


def test_a_new_search_supersedes_the_old_one_and_keeps_the_presets_trainings(run, tmp_path, capsys):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(run["out"], out)
    argv = [*run["argv"], "--out", str(out), "--search-trials", "2"]
    with pytest.raises(SystemExit) as exc:  # a changed search is refused without --new-search
        payoff.check_settings(payoff.parse_args(argv), payoff.settings(payoff.parse_args(argv)), print)
    assert exc.value.code == 2 and "search_trials" in capsys.readouterr().err
    (out / "check" / "yolov8n" / "seed7").mkdir(parents=True)  # a check of the old table goes with it
    (out / "check" / "yolov8n" / "seed7" / "curve.json").write_text("{}")
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    models = json.loads((out / "models.json").read_text())
    a = payoff.parse_args([*argv, "--new-search"])
    payoff.check_settings(a, payoff.settings(a), lambda msg: None)
    (old,) = (out / "superseded").iterdir()
    assert json.loads((old / "settings.json").read_text())["search_trials"] is None
    assert json.loads((out / "settings.json").read_text())["search_trials"] == 2
    for rel, data in before.items():  # nothing lost: every file is where it was, or under superseded/
        kept = old / rel if (old / rel).exists() else out / rel
        assert kept.read_bytes() == data, rel
    for m in models:
        stays = m["kind"] == "preset"
        assert (out / "train" / m["key"] / "seed0" / "curve.json").exists() == stays
        assert (old / "train" / m["key"]).exists() != stays
    assert (out / "targets.json").exists() and not (out / "models.json").exists()
    assert not (out / "latency.json").exists() and (old / "search").is_dir()
    assert not (out / "check").exists() and (old / "check" / "yolov8n" / "seed7" / "curve.json").exists()
    with pytest.raises(SystemExit):
        payoff.parse_args([*argv, "--new-search", "--shard", "1/2"])


def test_a_run_left_by_another_architecture_under_a_key_is_refused(run, tmp_path, capsys):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(run["out"], out)
    a = payoff.parse_args([*run["argv"], "--out", str(out)])
    model = json.loads((out / "models.json").read_text())[0]
    payoff.train(a, model, 0, 64, out, print)  # its own finished run: nothing to do
    with pytest.raises(SystemExit) as exc:
        payoff.train(a, {**model, "hash": "0" * 16}, 0, 64, out, print)
    assert exc.value.code == 2 and "arch.yaml" in capsys.readouterr().err


def test_the_report_says_what_the_search_delivered_for_each_target(tmp_path):
    (tmp_path / "search").mkdir()
    suite = [
        {"target_ms": 1.0, "trial": 5, "latency_ms": 0.9, "accuracy": 2.5},
        {"target_ms": 0.5, "trial": 0, "latency_ms": 0.45, "accuracy": 1.25},
    ]
    presets = [{"preset": "yolov6n", "trial": 0}, {"preset": "yolov8n", "trial": 1}]
    (tmp_path / "search" / "summary.json").write_text(json.dumps({"suite": suite, "presets": presets}))
    models = [{"key": "yolov8n", "kind": "preset"}, {"key": "suite1", "kind": "suite", "trial": 5}]
    targets = {"presets": {"yolov8n": {}, "yolov6n": {}, "yolo_nas_s": {}}, "targets_ms": [1.0, 0.5, 2.0]}
    text = payoff.suite_text(tmp_path, models, targets)
    assert text == (
        "yolov8n target 1.000 ms: suite1 (trial 5, 0.900 ms, proxy mAP 2.50); "
        "yolov6n target 0.500 ms: the preset yolov6n itself (trial 0, 0.450 ms, proxy mAP 1.25); "
        "yolo_nas_s target 2.000 ms: nothing measured under it"
    )
    assert payoff.suite_text(tmp_path / "nowhere", models, targets) == "–"
