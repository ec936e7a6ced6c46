"""glyphs: 32x32 grayscale letters and digits rendered from the fonts matplotlib ships.

Every face in matplotlib's ``mpl-data/fonts/ttf`` that maps all 62 characters ``0-9A-Za-z``
to real outlines takes part: DejaVu Sans, Sans Mono and Serif (four styles each), STIXGeneral
(four) and six Computer Modern faces, 22 in all (:data:`FAMILIES`; the symbol faces cmex10
and cmsy10, the empty Display faces and the placeholder LastResort face are left out).

A rendering is one character of one face with random jitter, drawn from ``seed``:

- scale ``U(0.85, 1.1)``, rotation ``U(-10, 10)`` degrees, shift ``U(-1.5, 1.5)`` pixels on
  each axis (at 32x32), applied around the glyph's centre;
- stroke weight: half the renderings are drawn with an outline of a quarter pixel that thickens
  them (the bold faces give the rest of the weight range).

The face sets the vertical layout (its own cap height and descender fill the same box), so
``o`` stays smaller than ``O`` and ``g`` hangs below the line. Glyphs are drawn at 4x (128x128)
and box-filtered down, so edges are anti-aliased. Pixels are in [-1, 1]: -1 background, +1 ink.

Split: one face of each family (DejaVu Sans, Sans Mono, Serif, STIXGeneral, Computer Modern)
is held out, chosen by seed: every rendering of those five faces is held-out data, never seen
in training. The trained faces' renderings are split again by ``test_fraction``, so the
held-out split has both new faces and new renderings of known ones. Labels (0-61, the index
in :data:`CHARS`) are kept for both splits: the evaluator's classifier is fitted on the
held-out split (``wsfm.metrics.evaluators.ImageEvaluator``).

Rendering 22k glyphs takes a few seconds; the arrays are cached under ``$WSFM_CACHE`` (else
``~/.cache/wsfm``) by a key of everything that decides them (fonts' bytes, PIL's FreeType,
the parameters), written atomically so that parallel stage tasks can share the file.
"""

from __future__ import annotations

import hashlib
import math
import os
import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["CHARS", "FAMILIES", "Glyphs", "glyph_faces", "render_glyphs", "split_glyphs"]

CHARS = string.digits + string.ascii_uppercase + string.ascii_lowercase  # label = index
SIZE = 32
OVERSAMPLE = 4  # drawn at 128x128, box-filtered to 32x32
CACHE_VERSION = 1  # bump when the rendering changes

# family -> the face files of matplotlib's bundled fonts that belong to it
FAMILIES: dict[str, tuple[str, ...]] = {
    "dejavu_sans": ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf",
                    "DejaVuSans-BoldOblique.ttf"),
    "dejavu_mono": ("DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf",
                    "DejaVuSansMono-Oblique.ttf", "DejaVuSansMono-BoldOblique.ttf"),
    "dejavu_serif": ("DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf",
                     "DejaVuSerif-BoldItalic.ttf"),
    "stix": ("STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf",
             "STIXGeneralBolIta.ttf"),
    "computer_modern": ("cmr10.ttf", "cmb10.ttf", "cmti10.ttf", "cmss10.ttf", "cmtt10.ttf",
                        "cmmi10.ttf"),
}


@dataclass(frozen=True)
class Glyphs:
    """Renderings: ``images`` (N, 1024) float32 in [-1, 1], ``labels`` (N,) int64 (index in
    :data:`CHARS`), ``faces`` (N,) int64 (index in ``face_names``)."""

    images: np.ndarray
    labels: np.ndarray
    faces: np.ndarray
    face_names: tuple[str, ...]


def font_folder() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def glyph_faces() -> tuple[str, ...]:
    """Every face file, family by family, in :data:`FAMILIES` order; each must exist and map
    every character of :data:`CHARS` (a matplotlib that ships other fonts fails here)."""
    from matplotlib import ft2font

    folder, faces = font_folder(), []
    for family, files in FAMILIES.items():
        for name in files:
            path = folder / name
            if not path.is_file():
                raise FileNotFoundError(f"glyphs: font {name} ({family}) is not in {folder}")
            charmap = ft2font.FT2Font(str(path)).get_charmap()
            missing = [c for c in CHARS if ord(c) not in charmap]
            if missing:
                raise ValueError(f"glyphs: font {path} lacks characters {''.join(missing)!r}")
            faces.append(name)
    return tuple(faces)


def _face_layout(font, size: int) -> tuple[float, float]:
    """(scale, baseline): the factor that makes the face's tallest extent (ascender top to
    descender bottom over all characters) fill 80% of a ``size`` box, and where the baseline
    then sits so that extent is centred."""
    tops, bottoms = zip(*((b[1], b[3]) for b in (font.getbbox(c, anchor="ls") for c in CHARS)),
                        strict=True)
    top, bottom = min(tops), max(bottoms)  # y grows downwards; top < 0 < bottom
    scale = 0.8 * size / (bottom - top)
    return scale, size / 2 - scale * (top + bottom) / 2


def _draw(path: Path, size: int) -> dict[tuple[str, int], np.ndarray]:
    """Each character of one face at ``size`` x ``size``, centred horizontally on its ink and
    vertically by the face's layout, with and without the thickening outline (``stroke`` 0,
    1): (char, stroke) -> uint8 ink (size, size)."""
    from PIL import Image, ImageDraw, ImageFont

    probe = ImageFont.truetype(str(path), 100)
    scale, baseline = _face_layout(probe, size)
    font = ImageFont.truetype(str(path), max(8, round(100 * scale)))
    out = {}
    for ch in CHARS:
        for stroke in (0, 1):
            width = stroke * OVERSAMPLE // 4  # a quarter pixel at the final size
            left, _, right, _ = font.getbbox(ch, anchor="ls", stroke_width=width)
            img = Image.new("L", (size, size), 0)
            ImageDraw.Draw(img).text((size / 2 - (left + right) / 2, baseline), ch, fill=255,
                                     font=font, anchor="ls", stroke_width=width,
                                     stroke_fill=255)
            out[ch, stroke] = np.asarray(img)
    return out


def _jitter(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One rendering: the (S, S) ink scaled, rotated and shifted around its centre, then
    box-filtered to 32x32; float32 in [-1, 1]."""
    from PIL import Image

    big = ink.shape[0]
    scale = rng.uniform(0.85, 1.1)
    angle = math.radians(rng.uniform(-10.0, 10.0))
    dx, dy = rng.uniform(-1.5, 1.5, size=2) * OVERSAMPLE
    # Output pixel p comes from input pixel A^-1 (p - c - d) + c (PIL takes the inverse map).
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    c = big / 2
    ox, oy = c + dx, c + dy
    inverse = (cos, sin, c - cos * ox - sin * oy, -sin, cos, c + sin * ox - cos * oy)
    img = Image.fromarray(ink).transform((big, big), Image.Transform.AFFINE, inverse,
                                         resample=Image.Resampling.BICUBIC)
    small = img.reduce(OVERSAMPLE)  # box filter
    return np.asarray(small, dtype=np.float32).reshape(-1) / 127.5 - 1.0


def render_glyphs(per_glyph: int, seed: int) -> Glyphs:
    """``per_glyph`` renderings of every character of every face (22 x 62 x per_glyph),
    deterministic from ``seed``; cached (module docstring)."""
    if per_glyph < 1:
        raise ValueError(f"per_glyph must be >= 1, got {per_glyph}")
    faces = glyph_faces()
    cache = _cache_path(faces, per_glyph, seed)
    if cache.is_file():
        with np.load(cache) as f:
            return Glyphs(f["images"], f["labels"], f["faces"], faces)
    rng = np.random.default_rng(seed)
    big = SIZE * OVERSAMPLE
    images, labels, face_ids = [], [], []
    for fi, name in enumerate(faces):
        inks = _draw(font_folder() / name, big)
        for li, ch in enumerate(CHARS):
            strokes = rng.integers(0, 2, size=per_glyph)
            for stroke in strokes:
                images.append(_jitter(inks[ch, int(stroke)], rng))
            labels += [li] * per_glyph
            face_ids += [fi] * per_glyph
    out = Glyphs(np.stack(images), np.asarray(labels, np.int64), np.asarray(face_ids, np.int64),
                 faces)
    _save(cache, out)
    return out


def split_glyphs(glyphs: Glyphs, test_fraction: float, seed: int
                 ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(train indices, held-out indices, held-out faces): one face per family held out
    whole (chosen by ``seed``), then ``test_fraction`` of the other renderings."""
    rng = np.random.default_rng(seed)
    held = tuple(str(files[rng.integers(len(files))]) for files in FAMILIES.values())
    held_ids = [glyphs.face_names.index(name) for name in held]
    unseen = np.isin(glyphs.faces, held_ids)
    known = np.flatnonzero(~unseen)
    order = rng.permutation(len(known))
    n_test = int(round(test_fraction * len(known)))
    test = np.sort(np.concatenate([np.flatnonzero(unseen), known[order[:n_test]]]))
    return np.sort(known[order[n_test:]]), test, held


def _cache_path(faces: tuple[str, ...], per_glyph: int, seed: int) -> Path:
    import PIL
    from PIL import features

    key = hashlib.sha256()
    for name in faces:
        key.update((font_folder() / name).read_bytes())
    key.update(f"{CACHE_VERSION} {PIL.__version__} {features.version('freetype2')} "
               f"{per_glyph} {seed}".encode())
    root = Path(os.environ.get("WSFM_CACHE") or Path.home() / ".cache" / "wsfm")
    return root / f"glyphs-{key.hexdigest()[:16]}.npz"


def _save(path: Path, glyphs: Glyphs) -> None:
    """Write atomically (a temporary file renamed into place): a reader sees the whole
    file or none. A cache that cannot be written is skipped: the data is still returned."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
        np.savez(tmp, images=glyphs.images, labels=glyphs.labels, faces=glyphs.faces)
        tmp.replace(path)
    except OSError:
        pass
