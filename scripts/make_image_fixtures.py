#!/usr/bin/env python3
"""Generate the image-preprocessing parity fixtures in __test__/fixtures/images/.

Images
  china.jpg, flower.jpg   scikit-learn's sample photos (CC BY 2.0, see README),
                          copied from the installed sklearn package
                          (sklearn/datasets/images/) if missing; SHA-256 checked.
  rgba_37x23.png          RGBA gradient with varying alpha          (generated)
  gray_40x30.png          8-bit grayscale (mode L)                  (generated)
  palette_29x17.png       palette image (mode P, 16 colours)        (generated)
  gray16_31x19.png        16-bit grayscale (mode I;16)              (generated)
  progressive_48x32.jpg   small progressive JPEG, 4:2:0             (generated)

The generated images are written only when missing (or with --regen-images),
so the committed files stay the source of truth; reference.json is always
recomputed from the files on disk.

reference.json, per image: decoded mode/size; the RGB pixels (small images:
all of them, base64 uint8 HWC; big JPEGs: SHA-256 of the decoded RGB bytes and
some sampled pixels only, because JPEG decoders legitimately differ by +-1..2
per channel); 224x224 resizes (BILINEAR and NEAREST); "shorter side to 256,
centre crop 224"; ImageNet-normalised float32 CHW tensors; and one grayscale
conversion. See __test__/fixtures/images/README.md for the exact semantics.

The script re-implements Pillow's BILINEAR resample (Resample.c, fixed point)
and NEAREST scale (Geometry.c ImagingScaleAffine) in numpy and asserts
bit-exact agreement with Pillow on every output, so the README's description
of the algorithms is checked, not guessed.

Usage:
    python3 -m venv /tmp/featvenv
    /tmp/featvenv/bin/pip install -r scripts/requirements-features.txt
    /tmp/featvenv/bin/python scripts/make_image_fixtures.py [--regen-images]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import os
import shutil

import numpy as np
import PIL
from PIL import Image, features

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "__test__", "fixtures", "images")
REFERENCE = os.path.join(OUT_DIR, "reference.json")

SKLEARN_IMAGES = {
    "china.jpg": "8378025ad2519d649d02e32bd98990db4ab572357d9f09841c2fbfbb4fefad29",
    "flower.jpg": "a77f6ec41e353afdf8bdff2ea981b2955535d8d83294f8cfa49cf4e423dd5638",
}
SMALL = ["rgba_37x23.png", "gray_40x30.png", "palette_29x17.png",
         "gray16_31x19.png", "progressive_48x32.jpg"]
BIG = ["china.jpg", "flower.jpg"]
NORMALIZE_BIG = "china.jpg"     # the one big image that gets a full float tensor
GRAY_IMAGE = "rgba_37x23.png"   # the image whose convert('L') is recorded

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
TARGET = 224
SHORT_SIDE = 256
MAX_BYTES = 6_000_000


# --------------------------------------------------------------------------
# source images
# --------------------------------------------------------------------------

def sha256_file(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def ensure_sklearn_images() -> None:
    for name, digest in SKLEARN_IMAGES.items():
        dst = os.path.join(OUT_DIR, name)
        if not os.path.exists(dst):
            import sklearn.datasets
            src = os.path.join(os.path.dirname(sklearn.datasets.__file__), "images", name)
            shutil.copyfile(src, dst)
            print(f"copied {src}")
        assert sha256_file(dst) == digest, f"{name}: unexpected SHA-256"


def make_small_images(force: bool) -> None:
    def want(name):
        return force or not os.path.exists(os.path.join(OUT_DIR, name))

    if want("rgba_37x23.png"):
        w, h = 37, 23
        y, x = np.mgrid[0:h, 0:w]
        a = np.zeros((h, w, 4), np.uint8)
        a[..., 0] = np.round(x * 255 / (w - 1))
        a[..., 1] = np.round(y * 255 / (h - 1))
        a[..., 2] = (x * 7 + y * 13) % 256
        a[..., 3] = np.round(255 - (x + y) * 255 / (w + h - 2))  # 255 top-left -> 0 bottom-right
        Image.fromarray(a, "RGBA").save(os.path.join(OUT_DIR, "rgba_37x23.png"), optimize=False)

    if want("gray_40x30.png"):
        w, h = 40, 30
        y, x = np.mgrid[0:h, 0:w]
        g = ((x * 255 // (w - 1)) ^ ((y // 5) % 2) * 0xAA).astype(np.uint8)  # gradient + stripes
        g[0, 0], g[0, 1], g[h - 1, w - 1] = 0, 255, 128
        Image.fromarray(g, "L").save(os.path.join(OUT_DIR, "gray_40x30.png"), optimize=False)

    if want("palette_29x17.png"):
        w, h = 29, 17
        y, x = np.mgrid[0:h, 0:w]
        idx = ((x // 3) + (y // 3) * 5) % 16
        im = Image.fromarray(idx.astype(np.uint8), "P")
        pal = []
        for i in range(16):
            pal += [(i * 53) % 256, (i * 97 + 40) % 256, (255 - i * 16) % 256]
        im.putpalette(pal)  # 16 RGB entries
        im.save(os.path.join(OUT_DIR, "palette_29x17.png"), optimize=False)

    if want("gray16_31x19.png"):
        w, h = 31, 19
        y, x = np.mgrid[0:h, 0:w]
        v = (x * 65535 // (w - 1)).astype(np.uint16)  # full 0..65535 ramp along x
        v[y % 2 == 1] = (v[y % 2 == 1] // 257)        # odd rows: values 0..255
        im = Image.frombytes("I;16", (w, h), v.astype("<u2").tobytes())
        im.save(os.path.join(OUT_DIR, "gray16_31x19.png"), optimize=False)

    if want("progressive_48x32.jpg"):
        w, h = 48, 32
        y, x = np.mgrid[0:h, 0:w]
        a = np.zeros((h, w, 3), np.uint8)
        a[..., 0] = np.round(x * 255 / (w - 1))
        a[..., 1] = np.round(y * 255 / (h - 1))
        a[..., 2] = np.where(((x // 8) + (y // 8)) % 2 == 0, 220, 30)
        Image.fromarray(a, "RGB").save(os.path.join(OUT_DIR, "progressive_48x32.jpg"),
                                       quality=90, progressive=True, optimize=False,
                                       subsampling="4:2:0")


# --------------------------------------------------------------------------
# independent re-implementations (self-check against Pillow)
# --------------------------------------------------------------------------

PRECISION_BITS = 32 - 8 - 2


def _bilinear_weights(in_size: int, out_size: int) -> np.ndarray:
    """Fixed-point weight matrix (out_size x in_size) exactly as Pillow's
    precompute_coeffs + normalize_coeffs_8bpc for the BILINEAR (triangle)
    filter, box = (0, in_size)."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale
    W = np.zeros((out_size, in_size), np.int64)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        ss = 1.0 / filterscale
        xmin = max(int(center - support + 0.5), 0)  # C cast truncates; clamp makes it equal
        xmax = min(int(center + support + 0.5), in_size)
        ws = []
        for x in range(xmin, xmax):
            t = abs((x - center + 0.5) * ss)
            ws.append(1.0 - t if t < 1.0 else 0.0)
        tot = sum(ws)
        for i, wv in enumerate(ws):
            k = wv / tot if tot != 0.0 else wv
            W[xx, xmin + i] = int(0.5 + k * (1 << PRECISION_BITS))  # k >= 0 for bilinear
    return W


def _apply(W: np.ndarray, a: np.ndarray, axis: int) -> np.ndarray:
    acc = np.tensordot(W, a.astype(np.int64), axes=([1], [axis]))  # out axis first
    acc = np.moveaxis(acc, 0, axis)
    acc = (acc + (1 << (PRECISION_BITS - 1))) >> PRECISION_BITS
    return np.clip(acc, 0, 255).astype(np.uint8)


def numpy_bilinear(rgb: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    """Pillow BILINEAR resize of an HWC uint8 image: horizontal pass first
    (only if the width changes), result rounded/clipped to uint8, then the
    vertical pass (only if the height changes)."""
    h, w = rgb.shape[:2]
    out = rgb
    if out_w != w:
        out = _apply(_bilinear_weights(w, out_w), out, axis=1)
    if out_h != h:
        out = _apply(_bilinear_weights(h, out_h), out, axis=0)
    return out


def _nearest_index(in_size: int, out_size: int) -> np.ndarray:
    """Geometry.c ImagingScaleAffine: xo = a0*0.5; per pixel xin = (int)xo;
    xo += a0 (accumulated in double), a0 = in/out."""
    a0 = in_size / out_size
    xo = a0 * 0.5
    idx = []
    for _ in range(out_size):
        idx.append(int(xo))
        xo += a0
    return np.array(idx)


def numpy_nearest(rgb: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    return rgb[_nearest_index(h, out_h)][:, _nearest_index(w, out_w)]


def shorter_side_size(w: int, h: int, short: int) -> tuple[int, int]:
    """torchvision Resize(int): shorter side -> short, longer side ->
    int(short * long / short_in) (truncated)."""
    if w <= h:
        return short, int(short * h / w)
    return int(short * w / h), short


def center_crop_box(w: int, h: int, size: int) -> tuple[int, int, int, int]:
    """torchvision CenterCrop: top = int(round((h - size) / 2.0)) with Python's
    round() (round half to EVEN), left likewise."""
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return left, top, left + size, top + size


# --------------------------------------------------------------------------
# reference
# --------------------------------------------------------------------------

def b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")


def normalize_chw(rgb: np.ndarray) -> np.ndarray:
    """uint8 HWC -> float32 CHW, (x / 255 - mean) / std, in float32."""
    x = rgb.astype(np.float32) / np.float32(255.0)
    x = (x - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)).astype("<f4")


def sample_points(w: int, h: int) -> list[tuple[int, int]]:
    pts = [(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1), (w // 2, h // 2)]
    rng = np.random.default_rng(7)
    pts += [(int(x), int(y)) for x, y in zip(rng.integers(0, w, 11), rng.integers(0, h, 11))]
    return pts


def image_record(name: str, checks: dict) -> dict:
    path = os.path.join(OUT_DIR, name)
    im = Image.open(path)
    im.load()
    w, h = im.size
    rec = {
        "file": name,
        "file_sha256": sha256_file(path),
        "format": im.format,
        "mode": im.mode,
        "size": [w, h],
    }
    if im.format == "JPEG":
        rec["progressive"] = bool(im.info.get("progressive", 0) or im.info.get("progression", 0))
    rgb_im = im.convert("RGB")
    rgb = np.asarray(rgb_im)
    assert rgb.shape == (h, w, 3) and rgb.dtype == np.uint8

    if name in SMALL:
        native = np.asarray(im)
        if im.mode == "I;16":
            rec["native"] = {"dtype": "uint16le", "channels": 1, "b64": b64(native.astype("<u2"))}
        elif im.mode == "P":
            pal = im.getpalette()  # flat RGB list
            rec["native"] = {"dtype": "uint8", "channels": 1, "b64": b64(native),
                             "palette": [pal[i:i + 3] for i in range(0, len(pal), 3)][:16]}
            rec["native"]["palette_entries_total"] = len(pal) // 3
        else:
            ch = 1 if native.ndim == 2 else native.shape[2]
            rec["native"] = {"dtype": "uint8", "channels": ch, "b64": b64(native)}
        rec["rgb_b64"] = b64(rgb)
        rec["normalized_native_chw_f32_b64"] = b64(normalize_chw(rgb))
    rec["rgb_sha256"] = hashlib.sha256(rgb.tobytes()).hexdigest()
    rec["rgb_samples"] = [[x, y, rgb[y, x].tolist()] for x, y in sample_points(w, h)]

    # 224x224 resizes of the RGB image
    bil = np.asarray(rgb_im.resize((TARGET, TARGET), Image.BILINEAR))
    nea = np.asarray(rgb_im.resize((TARGET, TARGET), Image.NEAREST))
    assert np.array_equal(bil, numpy_bilinear(rgb, TARGET, TARGET)), f"{name}: bilinear re-impl"
    assert np.array_equal(nea, numpy_nearest(rgb, TARGET, TARGET)), f"{name}: nearest re-impl"
    # does Pillow's accumulated NEAREST index equal floor((i + 0.5) * in / out)?
    # (it does not always: the running sum can land just below an integer)
    diffs = checks.setdefault("nearest_224_index_differs_from_floor_formula", {})
    for n_in in (w, h):
        simple = np.floor((np.arange(TARGET) + 0.5) * n_in / TARGET).astype(int)
        pil_idx = _nearest_index(n_in, TARGET)
        bad = np.nonzero(simple != pil_idx)[0]
        diffs[str(n_in)] = {"count": int(bad.size),
                            "first": [[int(i), int(pil_idx[i]), int(simple[i])] for i in bad[:3]]}
    rec["resize_bilinear_224_b64"] = b64(bil)
    rec["resize_nearest_224_b64"] = b64(nea)

    # shorter side -> 256 (BILINEAR), centre crop 224
    rw, rh = shorter_side_size(w, h, SHORT_SIDE)
    resized = rgb_im.resize((rw, rh), Image.BILINEAR)
    assert np.array_equal(np.asarray(resized), numpy_bilinear(rgb, rw, rh)), f"{name}: 256 re-impl"
    box = center_crop_box(rw, rh, TARGET)
    crop = np.asarray(resized.crop(box))
    assert crop.shape == (TARGET, TARGET, 3)
    half_up = (int(math.floor((rw - TARGET) / 2.0 + 0.5)), int(math.floor((rh - TARGET) / 2.0 + 0.5)))
    rec["resize256_crop224"] = {
        "resized_size": [rw, rh],
        "crop_box_ltrb": list(box),
        "half_to_even_differs_from_half_up": [box[0], box[1]] != list(half_up),
        "b64": b64(crop),
    }
    if name == NORMALIZE_BIG:
        # 224x224x3 float32 = 588 KiB (784 KiB base64): one big image only; the
        # small images carry the tensor of their native-size RGB instead
        rec["resize256_crop224"]["normalized_chw_f32_b64"] = b64(normalize_chw(crop))

    if name == GRAY_IMAGE:
        gray = np.asarray(rgb_im.convert("L"))
        r, g, b_ = (rgb[..., i].astype(np.int64) for i in range(3))
        fixed = ((r * 19595 + g * 38470 + b_ * 7471 + 0x8000) >> 16).astype(np.uint8)
        assert np.array_equal(gray, fixed), "convert('L') fixed-point formula"
        exact = (r * 299 + g * 587 + b_ * 114) / 1000.0
        rec["gray_L"] = {
            "b64": b64(gray),
            "max_abs_diff_vs_round_of_601_formula": int(np.abs(gray - np.round(exact)).max()),
            "max_abs_diff_vs_floor_of_601_formula": int(np.abs(gray - np.floor(exact)).max()),
        }
    return rec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--regen-images", action="store_true",
                    help="rewrite the generated small images even if they exist")
    args = ap.parse_args()
    os.makedirs(OUT_DIR, exist_ok=True)
    ensure_sklearn_images()
    make_small_images(args.regen_images)

    checks: dict = {}
    images = [image_record(n, checks) for n in BIG + SMALL]
    ref = {
        "meta": {
            "generator": "scripts/make_image_fixtures.py",
            "pillow": PIL.__version__,
            "numpy": np.__version__,
            "libjpeg": features.version("jpg"),
            "libjpeg_turbo": features.version("libjpeg_turbo") if features.check_feature("libjpeg_turbo") else None,
            "zlib": features.version("zlib"),
            "layout": "uint8 arrays are HWC row-major (RGB interleaved); float tensors are CHW float32 little-endian; "
                      "all base64 (standard alphabet, padded).",
            "rgb": "PIL Image.convert('RGB') of the decoded image: RGBA drops alpha (no compositing), L/P replicate / "
                   "look up the palette, I;16 CLAMPS each 16-bit value to 0..255 (it does not scale by 1/257).",
            "resize": "Image.resize((224, 224), BILINEAR|NEAREST) on the RGB image, reducing_gap=None (no JPEG draft "
                      "mode). BILINEAR = Pillow ImagingResample: separable triangle filter whose support is scaled by "
                      "max(in/out, 1), i.e. ANTIALIASED when downscaling; fixed point with 22 fractional bits; "
                      "horizontal pass first, intermediate rounded to uint8, then vertical. NEAREST = "
                      "src = (int)(in/out*0.5 + i*in/out) accumulated in double.",
            "resize256_crop224": "torchvision-style: shorter side -> 256 (longer = int(256*long/short)), BILINEAR; "
                                 "crop left = int(round((w-224)/2.0)), top likewise, Python round = half to even.",
            "normalize": "float32: (pixel / 255 - mean) / std, mean [0.485,0.456,0.406], std [0.229,0.224,0.225], "
                         "computed in float32 by numpy; compare with a tolerance of ~1e-6.",
            "jpeg_tolerance": "Decoded JPEG pixels depend on the decoder (IDCT, chroma upsampling); other decoders "
                              "may differ by +-1..2 per channel, and so will everything computed from them.",
            "checks": checks,
            "checks_note": "nearest_224_index_differs_from_floor_formula[in_size]: how many of the 224 NEAREST "
                           "source indices Pillow computes differently from floor((i + 0.5) * in / 224); 'first' "
                           "lists [i, pillow, floor_formula]. The bit-exact numpy re-implementations of BILINEAR and "
                           "NEAREST in the generator are asserted equal to Pillow for every output here.",
        },
        "images": images,
    }
    out = json.dumps(ref, indent=1, ensure_ascii=False) + "\n"
    with open(REFERENCE, "w", encoding="utf-8", newline="\n") as f:
        f.write(out)
    size = os.path.getsize(REFERENCE)
    for rec in images:
        print(f"{rec['file']:24s} {rec['format']:5s} {rec['mode']:5s} {rec['size']} "
              f"crop from {rec['resize256_crop224']['resized_size']} box {rec['resize256_crop224']['crop_box_ltrb']}")
    print(f"checks: {checks}")
    print(f"{os.path.relpath(REFERENCE, ROOT)}: {size} bytes")
    assert size < MAX_BYTES, size


if __name__ == "__main__":
    main()
