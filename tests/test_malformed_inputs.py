"""Malformed spaces and architectures end in exit 2 with one `error: FILE: path: expected …, found …` line."""

from __future__ import annotations

import time

import pytest
from typer.testing import CliRunner

from nasearch.cli.main import app
from tests.conftest import PRESETS
from tests.fixtures import micro_backbone

runner = CliRunner()
V8N = (PRESETS / "yolov8n.yaml").read_text()
TINY_HEAD = (
    "\nnc: 4\nimgsz: 128\n"
    + micro_backbone()
    + """neck: {type: v8_pan, up1: {out: 16, blocks: 1}, up2: {out: 16, blocks: 1}, down1: {out: 16, blocks: 1},
       down2: {out: 32, blocks: 1}}
head: {type: v8_head}
"""
)
BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(8)
)

CASES = {
    "empty": ("", "<root>", "an empty file"),
    "not_yaml": ("a: [1, 2\nb: }", "line", "valid YAML"),
    "top_level_list": ("- 1\n- 2\n", "<root>", "a YAML mapping"),
    "wrong_type": (V8N.replace("out: 16, k: 3", "out: sixteen, k: 3"), "backbone.stem.out", "integer"),
    "unknown_block": (
        V8N.replace("type: c2f_stage", "type: c2f_stag", 1),
        "backbone.stages[0].type",
        "did you mean 'c2f_stage'",
    ),
    "unknown_key": (
        V8N.replace("blocks: 1, shortcut", "blcks: 1, shortcut", 1),
        "backbone.stages[0].blcks",
        "did you mean 'blocks'",
    ),
    "out_of_range": (
        V8N.replace("blocks: 1, shortcut", "blocks: 0, shortcut", 1),
        "backbone.stages[0].blocks",
        "greater than or equal to 1",
    ),
    "negative_nc": (V8N.replace("nc: 80", "nc: -3"), "nc", "greater than or equal to 1"),
    "bool_for_int": (V8N.replace("nc: 80", "nc: true"), "nc", "boolean"),
    "missing_required": (V8N.replace("out: 16, k: 3", "k: 3"), "backbone.stem.out", "required"),
    "three_stages": (
        TINY_HEAD.replace("    - {type: c2f_stage, out: 32, blocks: 1}\n", "", 1),
        "backbone.stages",
        "4 items",
    ),
    "python_tag": ("nc: !!python/object/apply:os.system ['echo hi']\n", "line", "unsafe tag"),
    "alias_bomb": (BOMB, "<root>", "alias bomb"),
    "deep_nesting": ("a: " + "[" * 200 + "]" * 200 + "\n", "<root>", "nesting"),
    "bad_imgsz": (V8N.replace("imgsz: 640", "imgsz: 650"), "imgsz", "multiple of 32"),
    "unknown_activation": (V8N.replace("act: silu", "act: swish"), "act", "relu"),
    # issue 17: schema-valid once, then a torch traceback
    "even_stem_kernel": (
        TINY_HEAD.replace("stem: {type: conv_stem, out: 8}", "stem: {type: conv_stem, out: 8, k: 4}"),
        "backbone.stem.k",
        "odd kernel",
    ),
    "even_pool_kernel": (
        TINY_HEAD.replace("context: {type: sppf, out: 32}", "context: {type: sppf, out: 32, k: 4}"),
        "backbone.context.k",
        "odd kernel",
    ),
    "zero_channels": (
        TINY_HEAD.replace("{type: c2f_stage, out: 16, blocks: 1}", "{type: c2f_stage, out: 16, blocks: 1, e: 0.01}", 1),
        "backbone.stages[0].e",
        "at least one channel",
    ),
}

SPACE_CASES = {
    "impossible_constraints": (TINY_HEAD + "constraints:\n  - gt: [backbone.stem.out, 100]\n", "constraints", "satisf"),
    "unknown_rule": (
        TINY_HEAD + "constraints:\n  - smaller: [backbone.stem.out, 100]\n",
        "constraints[0].smaller",
        "one of the rules",
    ),
    "missing_path": (
        TINY_HEAD + "constraints:\n  - le: [backbone.stem.width, 100]\n",
        "constraints[0].le[0]",
        "which no branch has",
    ),
    "reversed_range": (
        TINY_HEAD.replace("stem: {type: conv_stem, out: 8}", "stem: {type: conv_stem, out: {range: [16, 8]}}"),
        "backbone.stem.out.range",
        "low <= high",
    ),
    "float_range_no_step": (
        TINY_HEAD.replace(
            "{type: c2f_stage, out: 16, blocks: 1}", "{type: c2f_stage, out: 16, blocks: 1, e: {range: [0.2, 0.5]}}", 1
        ),
        "backbone.stages[0].e.step",
        "a step",
    ),
    "empty_choice": (TINY_HEAD.replace("out: 8}", "out: {choice: []}}"), "backbone.stem.out.choice", "non-empty list"),
    "choice_option_bad": (
        TINY_HEAD.replace("out: 8}", "out: {choice: [8, -4]}}"),
        "backbone.stem.out.choice[1]",
        "greater than or equal",
    ),
    "decision_on_type": (
        TINY_HEAD.replace("type: conv_stem,", "type: {choice: [conv_stem]},"),
        "backbone.stem.type",
        "a fixed block type",
    ),
}


def _run(args: list[str]):
    start = time.perf_counter()
    result = runner.invoke(app, args)
    return result, time.perf_counter() - start


def _assert_one_error_line(result, file, path, needle):
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    line = lines[0]
    assert line.startswith(f"error: {file}: "), line
    assert path in line and needle in line, line
    assert "expected" in line and "found" in line
    assert "Traceback" not in result.output


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_architecture(tmp_path, name):
    text, path, needle = CASES[name]
    f = tmp_path / f"{name}.yaml"
    f.write_text(text)
    for cmd in (["model", "info", str(f)], ["space", "info", str(f)]):
        result, seconds = _run(cmd)
        _assert_one_error_line(result, f, path, needle)
        assert seconds < 5


@pytest.mark.parametrize("name", sorted(SPACE_CASES))
def test_malformed_space(tmp_path, name):
    text, path, needle = SPACE_CASES[name]
    f = tmp_path / f"{name}.yaml"
    f.write_text(text)
    result, _ = _run(["space", "info", str(f)])
    _assert_one_error_line(result, f, path, needle)


def test_decision_in_architecture(tmp_path):
    f = tmp_path / "a.yaml"
    f.write_text(TINY_HEAD.replace("out: 8}", "out: {choice: [8, 16]}}"))
    result, _ = _run(["model", "info", str(f)])
    _assert_one_error_line(result, f, "backbone.stem.out", "decisions belong in a space")


def test_directory_missing_and_binary(tmp_path):
    result, _ = _run(["model", "info", str(tmp_path)])
    _assert_one_error_line(result, tmp_path, "<file>", "a directory")
    missing = tmp_path / "nope.yaml"
    result, _ = _run(["space", "info", str(missing)])
    _assert_one_error_line(result, missing, "<file>", "no such path")
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"\xff\xfe\x00\x81garbage")
    result, _ = _run(["space", "info", str(binary)])
    _assert_one_error_line(result, binary, "<file>", "binary")


def test_valid_tiny_architecture_is_accepted(tmp_path):
    f = tmp_path / "ok.yaml"
    f.write_text(TINY_HEAD)
    result, _ = _run(["model", "info", str(f), "--json"])
    assert result.exit_code == 0, result.output


# --- issue 17: schema-valid architectures that crashed, leaks, checkpoints, outputs, datasets -------------

SECRET = "root:$6$s3cretsalt$hashhashhash:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"


def test_a_file_that_is_no_yaml_mapping_is_named_never_quoted(tmp_path):
    """`space: /etc/shadow` once printed the file's first line."""
    shadow = tmp_path / "shadow"
    shadow.write_text(SECRET)
    exp = tmp_path / "exp.yaml"
    exp.write_text(f"name: leak\nspace: {shadow}\nobjectives: {{accuracy: {{screen: {{proxy: params}}}}}}\n")
    run = tmp_path / "run"
    for args in (
        ["search", str(exp), "--out", str(run), "--no-progress"],
        ["space", "info", str(shadow)],
        ["model", "info", str(shadow)],
    ):
        result, _ = _run(args)
        _assert_one_error_line(result, shadow, "<root>", "none of those keys")
        assert "s3cret" not in result.output and "root:" not in result.output and "daemon" not in result.output
    assert not run.exists()


def test_internal_errors_print_one_line_without_debug(monkeypatch):
    import nasearch.space

    def crash(*_a, **_k):
        raise RuntimeError("shape mismatch\n" + "\n".join(f"  frame {i}" for i in range(300)))

    monkeypatch.setattr(nasearch.space, "build_model", crash)  # the command imports it when it runs
    result, _ = _run(["model", "info", "yolov8n"])
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert lines[0] == "internal error: RuntimeError: shape mismatch" and len(lines) == 2, result.output


def _ckpt(tmp_path, name="m.pt", **changes):
    import torch

    from nasearch.space import build_model, load_arch
    from nasearch.train.checkpoint import save_checkpoint

    arch = load_arch(tmp_path / "tiny.yaml") if (tmp_path / "tiny.yaml").exists() else None
    if arch is None:
        (tmp_path / "tiny.yaml").write_text(TINY_HEAD)
        arch = load_arch(tmp_path / "tiny.yaml")
    state = build_model(arch).state_dict()
    if changes.pop("nan", False):
        state["stem.conv.weight"] = torch.full_like(state["stem.conv.weight"], float("nan"))
    path = save_checkpoint({"arch": arch.data, "model": state}, tmp_path / name)
    if changes:
        raw = torch.load(path, weights_only=True)
        raw.update(changes)
        torch.save({k: v for k, v in raw.items() if v is not None}, path)
    return path


@pytest.mark.parametrize(
    "kind,needle",
    [("nan", "model.stem.conv.weight"), ("no_format", "format"), ("foreign_format", "format"), ("truncated", "<file>")],
)
def test_bad_checkpoints_are_refused_and_leave_no_files(tmp_path, kind, needle):
    changes = {
        "nan": {"nan": True},
        "no_format": {"format": None},
        "foreign_format": {"format": "ultralytics"},
        "truncated": {},
    }[kind]
    ckpt = _ckpt(tmp_path, **changes)
    if kind == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[:3000])
    out = tmp_path / "out"
    data = _synth(tmp_path)
    for args in (
        ["export", str(ckpt), "--format", "yaml,torch,onnx", "--out", str(out)],
        ["quantize", str(ckpt), "--mode", "ptq", "--data", str(data), "--out", str(out)],
        ["evaluate", str(ckpt), "--data", str(data)],
    ):
        result, _ = _run(args)
        assert result.exit_code == 2, (args, result.output)
        lines = [ln for ln in result.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith(f"error: {ckpt}: ") and needle in lines[0], result.output
        assert not out.exists() and not list(tmp_path.glob(".*"))  # nothing written, not even a temp file


def test_output_locations_that_cannot_be_written_exit_2_naming_the_path(tmp_path):
    a_file = tmp_path / "taken"
    a_file.write_text("precious\n")
    (tmp_path / "tiny.yaml").write_text(TINY_HEAD)
    for out in (a_file, a_file / "sub"):
        result, _ = _run(["export", str(tmp_path / "tiny.yaml"), "--format", "yaml", "--out", str(out)])
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert str(a_file) in result.output and len(result.output.strip().splitlines()) == 1
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        f"name: o\nspace: {tmp_path / 'tiny.yaml'}\n"
        "objectives: {accuracy: {screen: {proxy: params}}}\npresets: false\ntrials: 1\n"
    )
    for out in (a_file, a_file / "run"):
        result, _ = _run(["search", str(exp), "--out", str(out), "--no-progress"])
        assert result.exit_code == 2 and str(a_file) in result.output, result.output
    assert a_file.read_text() == "precious\n"
    run_dir = tmp_path / "somerun"
    run_dir.mkdir()
    for plot in (tmp_path / "missing" / "front.png", a_file / "front.png"):
        result, _ = _run(["pareto", str(run_dir), "--plot", str(plot)])
        assert result.exit_code == 2 and "--plot" in result.output, result.output
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("code", [30, 13, 28])  # EROFS, EACCES, ENOSPC: root cannot be stopped by chmod in tests
def test_os_errors_about_a_path_become_exit_2(monkeypatch, tmp_path, code):
    import os

    import nasearch.app.export as exporter

    def refuse(*_a, **_k):
        raise OSError(code, os.strerror(code), str(tmp_path / "ro" / "x.yaml"))

    monkeypatch.setattr(exporter, "export", refuse)
    (tmp_path / "tiny.yaml").write_text(TINY_HEAD)
    result, _ = _run(["export", str(tmp_path / "tiny.yaml"), "--format", "yaml", "--out", str(tmp_path / "ro")])
    _assert_one_error_line(result, tmp_path / "ro" / "x.yaml", "<path>", "a location this command can")


def _synth(tmp_path):
    from nasearch.data import generate_synthetic

    root = tmp_path / "syn"
    generate_synthetic(root, images=10, imgsz=64, seed=0)
    return root


def _broken_coco(tmp_path, how):
    import json

    root = _synth(tmp_path)
    ann = root / "annotations" / "instances_val.json"
    doc = json.loads(ann.read_text())
    victim = root / "images" / "val" / doc["images"][0]["file_name"]
    if how == "truncated":
        victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    elif how == "corrupt":
        victim.write_bytes(b"\xff\xd8\xff not a jpeg at all")
    else:
        (root / "images" / "outside.jpg").write_bytes(victim.read_bytes())
        doc["images"][0]["file_name"] = "../outside.jpg"
        ann.write_text(json.dumps(doc))
    return root, victim, ann


@pytest.mark.parametrize(
    "how,needle",
    [("truncated", "truncated JPEG"), ("corrupt", "readable image"), ("escape", "outside the image folder")],
)
def test_coco_images_are_checked_by_data_info_and_before_a_search(tmp_path, how, needle):
    root, victim, ann = _broken_coco(tmp_path, how)
    result, _ = _run(["data", "info", str(root)])
    assert result.exit_code == 2 and needle in result.output, result.output
    named = ann if how == "escape" else victim
    assert result.output.startswith(f"error: {named}: ") and len(result.output.strip().splitlines()) == 1
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        f"name: d\nspace: {tmp_path / 'tiny.yaml'}\ndataset: {{path: {root}}}\n"
        "objectives: {accuracy: {screen: {proxy: params}}}\npresets: false\ntrials: 1\n"
    )
    (tmp_path / "tiny.yaml").write_text(TINY_HEAD)
    run = tmp_path / "run"
    result, _ = _run(["search", str(exp), "--out", str(run), "--no-progress"])
    assert result.exit_code == 2 and needle in result.output, result.output
    assert not run.exists()  # refused before the run directory or any trial existed


def test_a_failed_export_leaves_no_partial_files(tmp_path, monkeypatch):
    """The ONNX step failing after the YAML and the checkpoint were written once left both behind."""
    import nasearch.app.export as exporter

    def tracer_fails(*_a, **_k):
        raise RuntimeError("tracer failed\n" + "frame\n" * 50)

    monkeypatch.setattr(exporter, "export_detector", tracer_fails)
    (tmp_path / "tiny.yaml").write_text(TINY_HEAD)
    out = tmp_path / "out"
    out.mkdir()
    (out / "older.onnx").write_bytes(b"an earlier export")
    result, _ = _run(["export", str(tmp_path / "tiny.yaml"), "--format", "yaml,torch,onnx", "--out", str(out)])
    assert result.exit_code == 1 and "internal error: RuntimeError: tracer failed" in result.output
    assert "frame" not in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in out.iterdir()) == ["older.onnx"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "tiny.yaml"]  # no staging folder left
