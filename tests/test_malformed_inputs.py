"""Malformed spaces and architectures end in exit 2 with one `error: FILE: path: expected …, found …` line."""

from __future__ import annotations

import time

import pytest
from typer.testing import CliRunner

from nasearch.cli.main import app
from tests.conftest import PRESETS

runner = CliRunner()
V8N = (PRESETS / "yolov8n.yaml").read_text()
TINY_HEAD = """
nc: 4
imgsz: 128
backbone:
  stem: {type: conv_stem, out: 8}
  stages:
    - {type: c2f_stage, out: 16, blocks: 1}
    - {type: c2f_stage, out: 16, blocks: 1}
    - {type: c2f_stage, out: 32, blocks: 1}
    - {type: c2f_stage, out: 32, blocks: 1}
  context: {type: sppf, out: 32}
neck: {type: v8_pan, up1: {out: 16, blocks: 1}, up2: {out: 16, blocks: 1}, down1: {out: 16, blocks: 1},
       down2: {out: 32, blocks: 1}}
head: {type: v8_head}
"""
BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(8))

CASES = {
    "empty": ("", "<root>", "an empty file"),
    "not_yaml": ("a: [1, 2\nb: }", "line", "valid YAML"),
    "top_level_list": ("- 1\n- 2\n", "<root>", "a YAML mapping"),
    "wrong_type": (V8N.replace("out: 16, k: 3", "out: sixteen, k: 3"), "backbone.stem.out", "integer"),
    "unknown_block": (V8N.replace("type: c2f_stage", "type: c2f_stag", 1), "backbone.stages[0].type",
                      "did you mean 'c2f_stage'"),
    "unknown_key": (V8N.replace("blocks: 1, shortcut", "blcks: 1, shortcut", 1), "backbone.stages[0].blcks",
                    "did you mean 'blocks'"),
    "out_of_range": (V8N.replace("blocks: 1, shortcut", "blocks: 0, shortcut", 1), "backbone.stages[0].blocks",
                     "greater than or equal to 1"),
    "negative_nc": (V8N.replace("nc: 80", "nc: -3"), "nc", "greater than or equal to 1"),
    "bool_for_int": (V8N.replace("nc: 80", "nc: true"), "nc", "boolean"),
    "missing_required": (V8N.replace("out: 16, k: 3", "k: 3"), "backbone.stem.out", "required"),
    "three_stages": (TINY_HEAD.replace("    - {type: c2f_stage, out: 32, blocks: 1}\n", "", 1),
                     "backbone.stages", "4 items"),
    "python_tag": ("nc: !!python/object/apply:os.system ['echo hi']\n", "line", "unsafe tag"),
    "alias_bomb": (BOMB, "<root>", "alias bomb"),
    "deep_nesting": ("a: " + "[" * 200 + "]" * 200 + "\n", "<root>", "nesting"),
    "bad_imgsz": (V8N.replace("imgsz: 640", "imgsz: 650"), "imgsz", "multiple of 32"),
    "unknown_activation": (V8N.replace("act: silu", "act: swish"), "act", "relu"),
}

SPACE_CASES = {
    "impossible_constraints": (TINY_HEAD + "constraints:\n  - gt: [backbone.stem.out, 100]\n", "constraints",
                               "satisf"),
    "unknown_rule": (TINY_HEAD + "constraints:\n  - smaller: [backbone.stem.out, 100]\n",
                     "constraints[0].smaller", "one of the rules"),
    "missing_path": (TINY_HEAD + "constraints:\n  - le: [backbone.stem.width, 100]\n", "constraints[0].le[0]",
                     "which no branch has"),
    "reversed_range": (TINY_HEAD.replace("stem: {type: conv_stem, out: 8}",
                                         "stem: {type: conv_stem, out: {range: [16, 8]}}"),
                       "backbone.stem.out.range", "low <= high"),
    "float_range_no_step": (TINY_HEAD.replace("{type: c2f_stage, out: 16, blocks: 1}",
                                              "{type: c2f_stage, out: 16, blocks: 1, e: {range: [0.2, 0.5]}}", 1),
                            "backbone.stages[0].e.step", "a step"),
    "empty_choice": (TINY_HEAD.replace("out: 8}", "out: {choice: []}}"), "backbone.stem.out.choice",
                     "non-empty list"),
    "choice_option_bad": (TINY_HEAD.replace("out: 8}", "out: {choice: [8, -4]}}"),
                          "backbone.stem.out.choice[1]", "greater than or equal"),
    "decision_on_type": (TINY_HEAD.replace("type: conv_stem,", "type: {choice: [conv_stem]},"),
                         "backbone.stem.type", "a fixed block type"),
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
