"""A proxy-trust measurement can be retrained from the cache's recorded settings and seed, and reproduces."""

from __future__ import annotations

import json

import pytest

from tests.fixtures import benchmark_script

TINY = ["--archs", "2", "--imgsz", "64", "--data-images", "24", "--long-epochs", "1", "--short-a", "8x1"]
TINY += ["--short-b", "8x1", "--noise-archs", "1", "--batch", "4"]


def test_check_retrains_one_recorded_measurement_and_reproduces_it(tmp_path, capsys):
    pt = benchmark_script("proxy_trust")
    out = tmp_path / "run"
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- proxy-trust:start -->\n<!-- proxy-trust:end -->\n")
    args = [*TINY, "--out", str(out), "--readme", str(readme)]
    pt.main(args)
    command = readme.read_text().split("Reproduce: `", 1)[1].split("`", 1)[0]
    assert command.endswith(f"--out {out} --tag proxy-trust")  # the report names its folder and its section
    cached = json.loads((out / "results-0of1.json").read_text())["entries"]
    recorded = next(e for e in cached.values() if e["index"] == 0)["long_seed2"]["value"]
    capsys.readouterr()
    pt.main([*args, "--check", "0:long_seed2"])
    doc = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert doc["recorded"] == recorded and doc["seed"] == 1 and doc["measurement"] == "long_seed2"
    assert doc["reproduced"] == pytest.approx(recorded, abs=1e-9)  # same machine, same seed: same training
    assert json.loads((out / "results-0of1.json").read_text())["entries"] == cached  # the cache is untouched


@pytest.mark.parametrize("spec", ["7", "0:nonsense", "x"])
def test_check_of_something_not_in_the_run_is_one_line_exit_2(tmp_path, capsys, spec):
    pt = benchmark_script("proxy_trust")
    with pytest.raises(SystemExit) as exc:
        pt.main([*TINY, "--out", str(tmp_path / "empty"), "--check", spec])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and err[-1].startswith("error: ") and ("--check" in err[-1] or "recorded" in err[-1])
