"""The trees data set (`nasearch data trees`): NEON aerial RGB scenes with hand-drawn crowns, as YOLO tiles.

The four annotated scenes (Pascal VOC XML) ship in the DeepForest wheel (MIT). Their files are read from the
wheel as a zip (`--wheel PATH`) or from an installed distribution (`pip install --no-deps deepforest==2.1.0`,
as `make` does); DeepForest's code is never imported. Every file is checked against the hashes pinned here,
which were read from the wheel whose sha256 is WHEEL_SHA256, so either route yields the same bytes.

Split by scene (no tile of the validation scene is seen in training); tiles are cut at native resolution,
the last row and column flush with the scene's border; a box cut by a tile border is clipped and kept in
that tile when more than KEEP_FRACTION of its area is inside. All scene labels (SOAP_061: Alive/Dead) map to
the single class `tree`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import time
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from nasearch import yamlio
from nasearch.data.outdir import write_directory_atomically
from nasearch.errors import OPTION, InputError

PACKAGE = "deepforest"
VERSION = "2.1.0"
WHEEL = f"{PACKAGE}-{VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "8c2798d8e9be7f0004b194fe207b76c1d9fff6e711b3db67b9508dcd5d00ae54"
LICENCE = "MIT"
SOURCE_URL = "https://pypi.org/project/deepforest/2.1.0/"
INSTALL_HINT = (
    f"`pip install --no-deps {PACKAGE}=={VERSION}` or --wheel PATH (from `pip download --no-deps {PACKAGE}=={VERSION}`)"
)
DATA_DIR = "deepforest/data"
VAL_SCENE = "2019_YELL_2_541000_4977000_image_crop"
# scene -> (sha256 of its .png, sha256 of its .xml, number of annotated boxes), read from the pinned wheel.
SCENES: dict[str, tuple[str, str, int]] = {
    "2019_YELL_2_528000_4978000_image_crop2": (
        "a9bdb0f4447fdd899d22f567e0e20ba8320c5413b2ad0cd0ac8d9f3b6e0f9767",
        "bd431af6a5086d721eb731b22f5ea28cd8a8eab06883efc1c665391acbc68e11",
        574,
    ),
    VAL_SCENE: (
        "178e58a23cc2642226a364a30f71bd9258ddc1b012c826f12250914a90c7a131",
        "cefe4b96888bacbf8af1674f000082e549aa707aa6590d545effb23e43f26631",
        279,
    ),
    "OSBS_029": (
        "d9477c6a00e4902c7bee487d4c5582c3b8b9a2f77f3908a29628b816b291e6ee",
        "1f68c4011d7b351c29ca755072e77f3d16e6fd1f995bd05a9dd4eb952b55373c",
        61,
    ),
    "SOAP_061": (
        "256508f1a62149bec4a80879077a865caf50e8cace095e6564c76befa480d424",
        "4833280af75fd9c47965a93e38945282835e9e725cac412bdb9469d63480947c",
        37,
    ),
}
CLASS_NAME = "tree"
KEEP_FRACTION = 0.5  # a clipped box is kept when more than half of its area lies inside the tile
MIN_SIDE_PX = 2.0  # clipped boxes thinner than this are dropped (nothing left to detect)
MARKER = "trees.json"  # written last; its presence means the directory is complete
FORMAT_VERSION = 1


@dataclass(frozen=True)
class TreesSummary:
    """What `data trees` reports."""

    out: str
    source: str
    package: str
    version: str
    wheel_sha256: str
    licence: str
    tile: int
    overlap: int
    train_scenes: list[str]
    val_scenes: list[str]
    train_tiles: int
    val_tiles: int
    boxes_total: int
    boxes_kept: int
    boxes_dropped: int
    box_instances: int
    seconds: float


class SceneFiles:
    """The scene files of one DeepForest wheel or installed distribution, verified against SCENES."""

    def __init__(
        self,
        wheel: str | Path | None = None,
        expected_sha256: str = WHEEL_SHA256,
        scenes: dict[str, tuple[str, str, int]] = SCENES,
    ) -> None:
        self.scenes = scenes
        self.wheel_sha256 = expected_sha256
        self._zip: zipfile.ZipFile | None = None
        self._dist: importlib.metadata.Distribution | None = None
        if wheel is not None:
            self.where = str(wheel)
            self._zip = _open_wheel(Path(wheel), expected_sha256)
        else:
            self._dist = _installed_distribution()
            self.where = str(self._dist.locate_file(DATA_DIR))

    def read(self, scene: str, suffix: str) -> bytes:
        """The bytes of `<scene>.<suffix>`, checked against its pinned sha256."""
        name = f"{DATA_DIR}/{scene}.{suffix}"
        expected = self.scenes[scene][0 if suffix == "png" else 1]
        try:
            if self._zip is not None:
                data = self._zip.read(name)
            else:
                assert self._dist is not None
                data = Path(str(self._dist.locate_file(name))).read_bytes()
        except (KeyError, OSError, zipfile.BadZipFile) as exc:
            raise InputError(self.where, name, f"the file of {PACKAGE} {VERSION}", f"{type(exc).__name__}") from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != expected:
            raise InputError(self.where, name, f"sha256 {expected}", f"sha256 {digest} (a modified file)")
        return data


def _open_wheel(path: Path, expected_sha256: str) -> zipfile.ZipFile:
    if not path.is_file():
        raise InputError(path, "<file>", f"the {WHEEL} wheel ({INSTALL_HINT})", "no such file")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected_sha256:
        raise InputError(
            path,
            "<file>",
            f"the {WHEEL} wheel with sha256 {expected_sha256}",
            f"sha256 {digest} (corrupt or another file)",
        )
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise InputError(path, "<file>", f"the {WHEEL} wheel (a zip archive)", "not a zip archive") from None


def _installed_distribution() -> importlib.metadata.Distribution:
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise InputError(
            None,
            "--wheel",
            f"the {PACKAGE} {VERSION} wheel or distribution ({INSTALL_HINT})",
            "neither --wheel nor an installed distribution",
        ) from None
    if dist.version != VERSION:
        raise InputError(
            dist.locate_file(""), PACKAGE, f"version {VERSION} ({INSTALL_HINT})", f"version {dist.version}"
        )
    return dist


def parse_voc(data: bytes, where: str) -> tuple[int, int, np.ndarray]:
    """(width, height, [N, 4] xyxy float boxes) of a Pascal VOC annotation; bad XML names its element."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise InputError(where, "<file>", "Pascal VOC XML", f"a parse error ({exc})") from None

    def number(node: ET.Element | None, tag: str, path: str) -> float:
        text = node.findtext(tag) if node is not None else None
        try:
            return float(text)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise InputError(where, f"{path}.{tag}", "a number", repr(text)) from None

    size = root.find("size")
    width, height = int(number(size, "width", "size")), int(number(size, "height", "size"))
    boxes = []
    for i, obj in enumerate(root.iter("object")):
        bnd = obj.find("bndbox")
        path = f"object[{i}].bndbox"
        box = [number(bnd, t, path) for t in ("xmin", "ymin", "xmax", "ymax")]
        if not (0 <= box[0] < box[2] <= width and 0 <= box[1] < box[3] <= height):
            raise InputError(where, path, f"a box inside the {width}x{height} image", str(box))
        boxes.append(box)
    return width, height, np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile origins along one axis: a stride of tile - overlap, the last tile flush with the border."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return [*starts, length - tile]


def clip_boxes(boxes: np.ndarray, x0: int, y0: int, tile: int) -> tuple[np.ndarray, np.ndarray]:
    """(tile-relative clipped boxes, index of each kept box in `boxes`) for the tile at (x0, y0)."""
    clipped = np.clip(boxes - np.array([x0, y0, x0, y0], dtype=np.float64), 0.0, float(tile))
    w, h = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = (w * h > KEEP_FRACTION * area) & (w >= MIN_SIDE_PX) & (h >= MIN_SIDE_PX)
    return clipped[keep], np.flatnonzero(keep)


def _yolo_rows(boxes: np.ndarray, size_w: int, size_h: int) -> str:
    return "".join(
        f"0 {(x1 + x2) / 2 / size_w:.6f} {(y1 + y2) / 2 / size_h:.6f} {(x2 - x1) / size_w:.6f} "
        f"{(y2 - y1) / size_h:.6f}\n"
        for x1, y1, x2, y2 in boxes.tolist()
    )


def _decode_png(data: bytes, where: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(where, "<file>", "a readable PNG", f"{type(exc).__name__}") from None
    return image.convert("RGB")


def _data_yaml(files: SceneFiles, tile: int, overlap: int, wheel_sha256: str) -> str:
    header = (
        f"# nasearch trees data set: NEON aerial RGB tiles of {tile} px from the {PACKAGE} {VERSION} wheel "
        f"({LICENCE}), split by scene.\n"
    )
    doc = {
        "train": "images/train",
        "val": "images/val",
        "nc": 1,
        "names": [CLASS_NAME],
        "source": {
            "package": PACKAGE,
            "version": VERSION,
            "wheel": WHEEL,
            "wheel_sha256": wheel_sha256,
            "licence": LICENCE,
            "url": SOURCE_URL,
            "read_from": files.where,
            "scenes": {s: {"png_sha256": p, "xml_sha256": x, "boxes": n} for s, (p, x, n) in files.scenes.items()},
        },
        "split": {
            "val": [s for s in files.scenes if s == VAL_SCENE],
            "train": [s for s in files.scenes if s != VAL_SCENE],
        },
        "tiling": {"tile": tile, "overlap": overlap, "keep_fraction": KEEP_FRACTION, "min_side_px": MIN_SIDE_PX},
    }
    return header + yamlio.dumps(doc)


def check_tree_args(tile: int, overlap: int) -> None:
    if not 32 <= tile <= 4096:
        raise InputError(OPTION, "tile", "a tile side in 32..4096 px", str(tile))
    if not 0 <= overlap < tile:
        raise InputError(OPTION, "overlap", f"pixels shared by neighbouring tiles, in 0..{tile - 1}", str(overlap))


def _write(root: Path, files: SceneFiles, tile: int, overlap: int, wheel_sha256: str) -> TreesSummary:
    start = time.perf_counter()
    tiles = {"train": 0, "val": 0}
    total = kept_total = instances = 0
    for split in tiles:
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
    for scene in files.scenes:
        split = "val" if scene == VAL_SCENE else "train"
        width, height, boxes = parse_voc(files.read(scene, "xml"), f"{files.where}:{scene}.xml")
        image = _decode_png(files.read(scene, "png"), f"{files.where}:{scene}.png")
        if image.size != (width, height):
            raise InputError(f"{files.where}:{scene}.xml", "size", f"the PNG's size {image.size}", f"{(width, height)}")
        kept = np.zeros(len(boxes), dtype=bool)
        for y0 in tile_starts(height, tile, overlap):
            for x0 in tile_starts(width, tile, overlap):
                crop = image.crop((x0, y0, min(x0 + tile, width), min(y0 + tile, height)))
                inside, index = clip_boxes(boxes, x0, y0, tile)
                inside = np.minimum(inside, np.array([crop.width, crop.height] * 2, dtype=np.float64))
                kept[index] = True
                instances += len(inside)
                stem = f"{scene}_y{y0:05d}_x{x0:05d}"
                crop.save(root / "images" / split / f"{stem}.png")
                (root / "labels" / split / f"{stem}.txt").write_text(_yolo_rows(inside, crop.width, crop.height))
                tiles[split] += 1
        total += len(boxes)
        kept_total += int(kept.sum())
    (root / "data.yaml").write_text(_data_yaml(files, tile, overlap, wheel_sha256))
    summary = TreesSummary(
        out=str(root),
        source=files.where,
        package=PACKAGE,
        version=VERSION,
        wheel_sha256=wheel_sha256,
        licence=LICENCE,
        tile=tile,
        overlap=overlap,
        train_scenes=[s for s in files.scenes if s != VAL_SCENE],
        val_scenes=[s for s in files.scenes if s == VAL_SCENE],
        train_tiles=tiles["train"],
        val_tiles=tiles["val"],
        boxes_total=total,
        boxes_kept=kept_total,
        boxes_dropped=total - kept_total,
        box_instances=instances,
        seconds=round(time.perf_counter() - start, 3),
    )
    marker = {
        "version": FORMAT_VERSION,
        "summary": {k: v for k, v in asdict(summary).items() if k not in ("out", "seconds", "source")},
    }
    (root / MARKER).write_text(json.dumps(marker, indent=1) + "\n")
    return summary


def generate_trees(
    out: str | Path, tile: int = 128, overlap: int = 0, wheel: str | Path | None = None, files: SceneFiles | None = None
) -> TreesSummary:
    """Write the trees data set to `out` (replacing an earlier one) via a sibling temp directory and a rename."""
    check_tree_args(tile, overlap)
    files = files if files is not None else SceneFiles(wheel)
    summary = write_directory_atomically(
        Path(out), MARKER, lambda tmp: _write(tmp, files, tile, overlap, files.wheel_sha256)
    )
    return TreesSummary(**{**asdict(summary), "out": str(out)})


def _matches(path: Path, tile: int, overlap: int) -> bool:
    try:
        meta = json.loads((path / MARKER).read_text())["summary"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return (meta.get("version"), meta.get("tile"), meta.get("overlap")) == (VERSION, tile, overlap)


def ensure_trees(directory: str | Path, tile: int = 128, overlap: int = 0, wheel: str | Path | None = None) -> Path:
    """The trees data set at `directory`, written only when missing or made with other tiling."""
    target = Path(directory)
    if not _matches(target, tile, overlap):
        generate_trees(target, tile=tile, overlap=overlap, wheel=wheel)
    return target
