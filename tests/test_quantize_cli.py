"""`nasearch quantize`: the JSON contract, QDQ structure, hybrid selection of a deliberately sensitive layer.

The detector is untrained, so its "ground truth" is its own float predictions (pseudo-labels written as a
COCO dataset over real synthetic images): the float model scores a high mAP, and any accuracy INT8
loses is real mAP measured by the project's COCO evaluation.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner

from nasearch.cli.main import app
from nasearch.data import ensure_synthetic, load_split, write_coco
from nasearch.eval.inference import predict_split, torch_predictor
from nasearch.eval.postprocess import NMSConfig
from nasearch.nn.inspect import randomize_bn
from nasearch.onnxio.qdq import quantized_nodes
from nasearch.onnxio.spec import int8_spec
from nasearch.space import build_model, load_space
from nasearch.train.checkpoint import save_checkpoint

IMGSZ = 64
SENSITIVE = "/head/cls.0/cls.0.2/Conv"  # the P3 class-logit conv
CONTRACT = ("map_float", "map_int8", "drop", "latency_float_ms", "latency_int8_ms", "float_layers")


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: torch on one thread


def pseudo_labelled(model: torch.nn.Module, source: Path, out: Path, per_image: int = 20) -> Path:
    """A COCO dataset over `source`'s images whose boxes are the model's own best detections."""
    (out / "annotations").mkdir(parents=True)
    os.symlink(source / "images", out / "images")
    for name in ("train", "val"):
        split = load_split(source, name)
        dets, ids = predict_split(torch_predictor(model.eval()), split, IMGSZ, 8, NMSConfig())
        by_id = dict(zip(ids, dets, strict=True))
        records = []
        for r in split.records:
            d = by_id[r.image_id]
            wh = d.boxes[:, 2:] - d.boxes[:, :2]
            keep = ((wh >= 2).all(1)).nonzero().flatten()[:per_image]
            records.append(
                replace(
                    r, boxes=d.boxes[keep].numpy().astype(np.float32), classes=d.classes[keep].numpy().astype(np.int64)
                )
            )
        write_coco(
            replace(split, records=tuple(records)),
            out / "annotations" / f"instances_{name}.json",
            image_root=source / "images" / name,
        )
    return out


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_space_path):
    """(checkpoint of a detector with an outlier class-logit channel, its pseudo-labelled dataset)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("quant")
    images = ensure_synthetic(root / "synth", images=40, imgsz=IMGSZ, seed=3)
    arch = load_space(tiny_space_path).sample(0).with_overrides(nc=10)
    torch.manual_seed(0)
    model = randomize_bn(build_model(arch)).eval()
    with torch.no_grad():
        for level in range(3):  # spread the untrained logits so scores and boxes differ from anchor to anchor
            model.head.cls[level][2].weight.mul_(40.0)
            model.head.cls[level][2].bias.zero_()
            model.head.box[level][2].weight.mul_(20.0)
        model.head.cls[0][2].bias[9] = -300.0  # class 9 never scores: an outlier stretching the tensor's range
    ckpt = save_checkpoint(
        {"arch": arch.data, "model": model.state_dict(), "train_args": {"imgsz": IMGSZ}}, root / "model.pt"
    )
    data = pseudo_labelled(model, images, root / "pseudo")
    return ckpt, data


def _quantize(args: list[str]) -> dict:
    result = CliRunner().invoke(app, ["quantize", *args, "--json", "--calib-images", "8"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_ptq_report_and_qdq_graph(setup, tmp_path):
    ckpt, data = setup
    doc = _quantize([str(ckpt), "--data", str(data), "--mode", "ptq", "--target", "tensorrt", "--out", str(tmp_path)])
    for key in CONTRACT:
        assert key in doc, key
    assert doc["map_float"] > 50  # the pseudo-labels are the float model's own detections
    assert doc["drop"] == pytest.approx(doc["map_float"] - doc["map_int8"], abs=1e-3)
    assert doc["latency_float_ms"] > 0 and doc["latency_int8_ms"] > 0 and doc["latency_measured"] is True
    assert doc["float_layers"] == [] and doc["activations"] == "s8" and doc["target"] == "tensorrt"
    assert doc["int8_spec"] == int8_spec("tensorrt").as_dict()  # the settings written, named
    assert json.loads((tmp_path / "quantize.json").read_text()) == doc
    int8 = Path(doc["int8_onnx"])
    onnx.checker.check_model(str(int8))
    assert onnx.load(str(int8)).opset_import[0].version >= 17
    states = quantized_nodes(int8)
    assert len(states) > 40 and all(states.values())  # every conv INT8
    # the outlier channel wrecks plain PTQ: a large, real mAP drop
    assert doc["drop"] > 10
    # TensorRT form: symmetric signed activations (zero points all 0, int8)
    model = onnx.load(str(int8))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    zps = [inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert zps and all(z.dtype == np.int8 and not z.any() for z in zps)


def test_hybrid_keeps_the_sensitive_layer_in_float(setup, tmp_path):
    ckpt, data = setup
    candidates = [
        SENSITIVE,
        "/head/cls.1/cls.1.2/Conv",
        "/head/box.0/box.0.2/Conv",
        "/stem/conv/Conv",
        "/neck/td2/cv2/conv/Conv",
    ]
    doc = _quantize(
        [
            str(ckpt),
            "--data",
            str(data),
            "--mode",
            "hybrid",
            "--max-drop",
            "10.0",
            "--candidates",
            ",".join(candidates),
            "--out",
            str(tmp_path),
        ]
    )
    # The budget sits far from both outcomes (about 20 points of plain-PTQ drop, about 5 with the one conv in
    # float, on 20 selection images): at 5.0 the float kernels of one CPU or another decided the choice.
    assert doc["map_ptq"] < doc["map_float"] - 10.0  # plain PTQ misses the budget...
    assert doc["float_layers"] == [SENSITIVE]  # ...and keeping this one conv in float is enough
    assert doc["drop"] <= 10.0 and doc["reached"] is True
    assert max(doc["sensitivity"], key=doc["sensitivity"].get) == SENSITIVE
    assert doc["activations"] == "u8"
    assert "latency_cost_ms" in doc and "latency_all_int8_ms" in doc
    # the layers were chosen on one half of the val split; every reported figure is on the other half
    split = doc["split"]
    chosen, reported = set(split["selection_image_ids"]), set(split["report_image_ids"])
    assert chosen and reported and not chosen & reported
    assert len(chosen | reported) == len(load_split(data, "val")) and doc["val_images"] == len(reported)
    sel = doc["selection"]
    assert sel["drop"] <= 10.0 and sel["drop"] == pytest.approx(sel["map_float"] - sel["map_int8"], abs=1e-3)
    states = quantized_nodes(doc["int8_onnx"])
    assert states[SENSITIVE] is False and sum(states.values()) == len(states) - 1


def test_bad_inputs_exit_2(setup, tmp_path):
    ckpt, data = setup
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(ckpt.read_bytes()[:2000])  # a truncated checkpoint
    other = ensure_synthetic(tmp_path / "other", images=8, imgsz=IMGSZ, seed=0)
    four = tmp_path / "four.pt"
    arch = load_space(Path(__file__).parents[1] / "search_spaces" / "tiny_space.yaml").sample(0)
    save_checkpoint({"arch": arch.data, "model": build_model(arch).state_dict()}, four)  # nc 4, data has 10
    cases = [
        ([str(corrupt), "--data", str(data), "--mode", "ptq"], "corrupt.pt"),
        ([str(tmp_path / "missing.pt"), "--data", str(data), "--mode", "ptq"], "missing.pt"),
        ([str(ckpt), "--data", str(data), "--mode", "int4"], "--mode"),
        ([str(ckpt), "--data", str(data), "--mode", "ptq", "--calibration", "kl"], "--calibration"),
        ([str(four), "--data", str(other), "--mode", "ptq"], "classes"),
        ([str(ckpt), "--data", str(data), "--mode", "hybrid", "--candidates", "/no/Conv"], "--candidates"),
    ]
    for args, needle in cases:
        result = CliRunner().invoke(app, ["quantize", *args, "--out", str(tmp_path / "o")])
        assert result.exit_code == 2, (args, result.output)
        last = result.stderr.strip().splitlines()[-1]  # progress may come first; the error line ends it
        assert last.startswith("error: ") and needle in last, (args, result.stderr)
        assert "Traceback" not in result.output


def test_quantized_ops_per_mode_and_target(tmp_path):
    from nasearch.app.quantize import QuantizeOptions
    from nasearch.errors import InputError

    def opts(**kw) -> QuantizeOptions:
        return QuantizeOptions(**{"mode": "ptq", "data": "d", "out": tmp_path, **kw})

    assert opts().quantized_ops() == ("Conv", "ConvTranspose")  # INT8 SiLU costs accuracy: opt in only
    assert opts(ops="conv+act").quantized_ops() == ("Conv", "ConvTranspose", "Sigmoid", "Mul")
    assert opts(target="tensorrt").quantized_ops() == ("Conv", "ConvTranspose")  # TensorRT fuses activations
    assert opts(mode="hybrid").quantized_ops() == ("Conv", "ConvTranspose")  # a float layer is a float conv
    assert opts(ops="conv").quantized_ops() == ("Conv", "ConvTranspose")
    with pytest.raises(InputError):
        opts(mode="qat", ops="conv+act").check()
    with pytest.raises(InputError):
        opts(ops="everything").check()


def test_selection_split_is_disjoint_alternating_and_deterministic(tmp_path):
    from nasearch.quant.hybrid import selection_split

    val = load_split(ensure_synthetic(tmp_path / "s", images=40, imgsz=IMGSZ, seed=1), "val")
    select, report = selection_split(val)
    ids = sorted(r.image_id for r in val.records)
    assert [r.image_id for r in select.records] == ids[0::2] and [r.image_id for r in report.records] == ids[1::2]
    assert [r.image_id for r in selection_split(val)[0].records] == ids[0::2]
