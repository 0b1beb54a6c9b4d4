"""The words in pictures (OCR): what reading them costs, and how often a word seen in a photo finds it.

    .venv/bin/python bench/bench_ocr.py [--signs 20] [--documents 3] [--receipts 3] [--screenshots 6]
        [--distractors 40] [--cost-photos 20] [--cost-per-category 4]
        [--model ../shared/models/clip-vit-base-patch32]

One run, three parts:
1. the cost of reading one picture on the product's path: services/ingest_worker/ocr.py's ``pictures``
   (the original decoded at up to ocr_max_side pixels; video frames decoded again at their timestamps)
   and ``TextEngine.read`` (PP-OCR through rapidocr, one ONNX Runtime thread), as the worker's TextReader
   calls them, in this process, picture after picture: ordinary photos of imagenet-sample, generated signs
   (1600x1200), documents and receipts (many small lines), real Chromium screenshots (headless Chromium
   rendering HTML pages: settings, an e-mail, a spreadsheet...), real scans when they can be fetched, and
   the frames of a generated 1080p H.264 clip. The reference, measured in the same run: the CLIP image
   tower (the embedder's own model code, services/embedder/model.py, fp32, batch 16, forward passes over
   preprocessed photos) on one thread too, so "OCR costs N embeddings" compares CPU with CPU. Also the
   first call's cost (imports and model load).
2. the share of queries for a word visible in a photo that put that photo in the top 3: the real stack
   (Redis, embedder, index, worker with OCR on, gateway) on loopback in a temporary data dir; the text
   pictures of part 1 and ordinary photos as distractors uploaded in one job; once the job is done and
   every picture's text is read, each text picture is searched for by words it shows (one word, and a
   two-word phrase on one line) with GET /search in mode both (the product's default: CLIP fused with the
   text match), visual (CLIP alone) and text (the text match alone), k=10.
3. median search latency of each mode, from the client (loopback HTTP included).

Real scans: the test images that OCRmyPDF ships in its source distribution on PyPI (a typewritten recipe,
a scanned brochure page, a map), fetched with ``pip download`` into the temporary dir at run time (never
stored in this repository); skipped, and said so, when PyPI cannot be reached (``--no-real``).

The CLIP model is the real ViT-B/32 architecture; with the config-only directory in ../shared/models its
weights are random (as in every bench), so CLIP alone ranks at chance. ``--model`` pointing at a directory
with weights (model.safetensors or pytorch_model.bin) uses them, for the real visual column.
Writes bench/results/ocr.md (and ocr.json, every figure and query) and prints the tables.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import platform
import shutil
import sqlite3
import statistics
import string
import subprocess
import sys
import tarfile
import tempfile
import time
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import TEST_API_KEY, stack_env  # the stack's static key: the client is signed in
from tests.samples import PHOTOS, ffmpeg, jpeg

RESULTS = REPO / "bench" / "results"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # as services/embedder/model.py looks for them
CLIP_BATCH = 16
SEARCH_K = 10
MODES = ("both", "visual", "text")
FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/liberation")
SIGN_FONTS = ("DejaVuSans-Bold.ttf", "LiberationSerif-Regular.ttf", "DejaVuSansMono.ttf", "LiberationSans-Italic.ttf",
              "DejaVuSerif-Bold.ttf", "LiberationSansNarrow-Bold.ttf", "DejaVuSansCondensed.ttf",
              "LiberationMono-Bold.ttf", "DejaVuSerif-Italic.ttf", "LiberationSans-Bold.ttf")
# The words the pictures show and the queries ask for: distinct, none inside another, none in the filler text.
POOL = """harbour bakery pharmacie bibliothek lisboa marigold saffron juniper tamarind pistachio cobalt vermilion
falconer quarry windmill orchard lantern meridian almanac zephyr gondola citadel monsoon glacier tundra savanna
lagoon archipelago fjord canyon bistro trattoria patisserie brasserie taverna creperie gelateria boulangerie
delicatessen rotisserie ferryboat tramway funicular aqueduct viaduct boulevard promenade esplanade arcade
pavilion cinnamon cardamom nutmeg paprika oregano rosemary lavender chamomile hibiscus ginseng walrus pelican
flamingo tortoise hedgehog badger otter heron kingfisher puffin sapphire emerald topaz garnet obsidian quartz
amber onyx jasper turquoise violin cello oboe bassoon harpsichord mandolin banjo ukulele accordion trombone
kilimanjaro patagonia andalusia bavaria tuscany provence galicia cornwall brittany hokkaido velvet porcelain
mahogany tapestry chandelier carousel telescope sextant barometer compass noodle dumpling croissant baguette
pretzel waffle brioche focaccia ciabatta strudel""".split()
FILLER = """the of and to in is for on that with as by at from this report team project meeting please note total
amount date page section review budget plan office update customer service order number account payment due
thank you we will our your has have been was were are be it its an or not all any more new first last next
week month year day time work group members staff policy change request support details below above contact
following information should would could may must also only each other such these those than then""".split()
SIGN_STYLES = (((245, 240, 225), (20, 20, 30)), ((30, 110, 60), (250, 250, 250)), ((20, 60, 150), (250, 250, 250)),
               ((240, 200, 40), (15, 15, 15)), ((250, 250, 250), (190, 20, 30)), ((35, 35, 35), (240, 240, 240)))
# Real scans from OCRmyPDF's sdist (tests/resources): file -> queries (words and phrases the picture shows).
OCRMYPDF = "ocrmypdf==17.13.0"
REAL_SCANS = {"typewriter.png": (["linzensoep", "kruidnagel"], ["liter water"]),
              "linn.png": (["linnsequencer", "polyphonic"], ["disk drive"]),
              "baiona_color.jpg": (["mugerre", "komunikabideak"], ["errepide nagusiak"])}


@dataclass
class Item:
    """One picture of the corpus: its file, its category and the queries that should find it."""

    name: str
    category: str
    path: Path
    words: list[str]  # one-word queries
    phrases: list[str]  # two-word queries (the two words on one line)
    text: str = ""  # every word it shows, when known (generated pictures), to check the queries are its own


@dataclass
class Cost:
    category: str
    name: str
    size: tuple[int, int]  # as read (after fitting to ocr_max_side)
    decode_s: float
    ocr_s: float
    ocr_cpu_s: float
    lines: int


@dataclass
class Outcome:
    name: str
    category: str
    kind: str  # "word" or "phrase"
    query: str
    rank: dict[str, int | None] = field(default_factory=dict)  # mode -> 1-based rank in the top k, None if absent
    seconds: dict[str, float] = field(default_factory=dict)


# -- the corpus ---------------------------------------------------------------------------------------------
def font(name: str, size: int) -> ImageFont.FreeTypeFont:
    for folder in FONT_DIRS:
        if (Path(folder) / name).exists():
            return ImageFont.truetype(str(Path(folder) / name), size)
    return ImageFont.truetype(str(Path(FONT_DIRS[0]) / "DejaVuSans.ttf"), size)


def photo_background(photo: Path, canvas: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """A real photo filling ``canvas`` (scaled and cropped), a little darker or lighter."""
    with Image.open(photo) as image:
        image = image.convert("RGB")
    scale = max(canvas[0] / image.width, canvas[1] / image.height)
    image = image.resize((round(image.width * scale) + 1, round(image.height * scale) + 1), Image.Resampling.BICUBIC)
    image = image.crop((0, 0, *canvas))
    gain = float(rng.uniform(0.75, 1.1))
    return Image.fromarray(np.clip(np.asarray(image, dtype=np.float32) * gain, 0, 255).astype(np.uint8))


def noisy_background(canvas: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    field_ = rng.integers(50, 210, (canvas[1] // 10, canvas[0] // 10, 3), dtype=np.uint8)
    return Image.fromarray(field_).resize(canvas, Image.Resampling.BICUBIC)


def sign(words: str, face: ImageFont.FreeTypeFont, style: int, angle: float) -> Image.Image:
    """``words`` on a plate of its own colours, turned by ``angle`` degrees (RGBA, transparent around)."""
    plate_colour, ink = SIGN_STYLES[style % len(SIGN_STYLES)]
    left, top, right, bottom = face.getbbox(words)
    pad = face.size // 2
    plate = Image.new("RGBA", (right - left + 2 * pad, bottom - top + 2 * pad), (*plate_colour, 255))
    ImageDraw.Draw(plate).text((pad - left, pad - top), words, font=face, fill=(*ink, 255))
    return plate.rotate(angle, expand=True, resample=Image.Resampling.BICUBIC)


def paste_somewhere(picture: Image.Image, overlay: Image.Image, rng: np.random.Generator) -> None:
    if overlay.width > picture.width or overlay.height > picture.height:
        overlay.thumbnail((picture.width - 20, picture.height - 20))
    x = int(rng.integers(0, max(1, picture.width - overlay.width)))
    y = int(rng.integers(0, max(1, picture.height - overlay.height)))
    picture.paste(overlay, (x, y), overlay)


def photographed(picture: Image.Image, rng: np.random.Generator) -> bytes:
    """A camera's softness and sensor noise, then JPEG."""
    picture = picture.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.2))))
    pixels = np.asarray(picture, dtype=np.int16) + rng.normal(0, 4, (picture.height, picture.width, 1)).astype(np.int16)
    return jpeg(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), quality=int(rng.integers(80, 92)))


def filler_line(rng: np.random.Generator, words: int) -> str:
    line = " ".join(FILLER[i] for i in rng.integers(len(FILLER), size=words))
    return line[0].upper() + line[1:]


def make_signs(count: int, words: list[str], backgrounds: list[Path], out: Path, seed: int) -> list[Item]:
    """Two-word signs on 1600x1200 photos (real photos behind, or a noisy field), fonts, sizes and angles varied."""
    items = []
    for index in range(count):
        rng = np.random.default_rng(seed + index)
        first, second = words.pop(0), words.pop(0)
        text = f"{first} {second}"
        text = [text.upper(), text.title(), text][index % 3]
        canvas = (1600, 1200)
        picture = (photo_background(backgrounds[index % len(backgrounds)], canvas, rng) if index % 3 != 2
                   else noisy_background(canvas, rng))
        size = [34, 48, 64, 80, 100, 130][index % 6]
        angle = float(rng.uniform(-8, 8) if index % 2 == 0 else rng.uniform(-30, 30))
        face = font(SIGN_FONTS[index % len(SIGN_FONTS)], size)
        paste_somewhere(picture, sign(text, face, index, angle), rng)
        path = out / f"sign-{index:02d}.jpg"
        path.write_bytes(photographed(picture, rng))
        items.append(Item(path.name, "signs", path, [first, second], [f"{first} {second}"], text.lower()))
    return items


def make_documents(count: int, words: list[str], out: Path, seed: int) -> list[Item]:
    """A4 pages at 150 dpi (1240x1754), a title and ~40 lines of small print, one query word among them."""
    items = []
    for index in range(count):
        rng = np.random.default_rng(seed + 100 + index)
        first, second, third = words.pop(0), words.pop(0), words.pop(0)
        page = Image.new("RGB", (1240, 1754), (250, 249, 244))
        draw = ImageDraw.Draw(page)
        title = font(["DejaVuSans-Bold.ttf", "LiberationSerif-Regular.ttf", "LiberationSans-Bold.ttf"][index % 3], 46)
        body = font(["DejaVuSerif.ttf", "LiberationSans-Regular.ttf", "LiberationMono-Regular.ttf"][index % 3],
                    [22, 24, 26][index % 3])
        draw.text((110, 110), f"{first.title()} {second.title()}", font=title, fill=(15, 15, 20))
        lines = [filler_line(rng, int(rng.integers(7, 11))) for _ in range(42)]
        at = int(rng.integers(8, 34))
        cut = lines[at].split()
        cut.insert(int(rng.integers(1, len(cut))), third)
        lines[at] = " ".join(cut)
        for number, line in enumerate(lines):
            draw.text((110, 220 + number * 34), line, font=body, fill=(30, 30, 35))
        page = page.rotate(float(rng.uniform(-1.5, 1.5)), resample=Image.Resampling.BICUBIC, fillcolor=(250, 249, 244))
        path = out / f"document-{index:02d}.jpg"
        path.write_bytes(photographed(page, rng))
        items.append(Item(path.name, "documents", path, [first, third], [f"{first} {second}"],
                          f"{first} {second}\n" + "\n".join(lines).lower()))
    return items


def make_receipts(count: int, words: list[str], backgrounds: list[Path], out: Path, seed: int) -> list[Item]:
    """Till receipts (monospaced, ~30 lines) photographed on a table: 1200x1600, slightly turned."""
    items = []
    for index in range(count):
        rng = np.random.default_rng(seed + 200 + index)
        first, second, third = words.pop(0), words.pop(0), words.pop(0)
        face = font(["DejaVuSansMono.ttf", "LiberationMono-Regular.ttf", "LiberationMono-Bold.ttf"][index % 3], 24)
        shop = f"{first} {second}".upper()
        items_ = [f"{filler_line(rng, 2).upper():<22}{rng.uniform(0.5, 30):>8.2f}" for _ in range(14)]
        items_.insert(int(rng.integers(2, 12)), f"{third.upper():<22}{rng.uniform(0.5, 30):>8.2f}")
        lines = [shop.center(30), "12 HIGH STREET".center(30), f"2026-0{index % 9 + 1}-14  18:{index:02d}".center(30),
                 "-" * 30, *items_, "-" * 30, f"{'TOTAL':<22}{rng.uniform(40, 200):>8.2f}", f"{'CARD':<22}{'PAID':>8}",
                 "", "THANK YOU".center(30)]
        paper = Image.new("RGBA", (560, 120 + 36 * len(lines)), (248, 247, 240, 255))
        draw = ImageDraw.Draw(paper)
        for number, line in enumerate(lines):
            draw.text((40, 60 + number * 36), line, font=face, fill=(25, 25, 30, 255))
        paper = paper.rotate(float(rng.uniform(-5, 5)), expand=True, resample=Image.Resampling.BICUBIC)
        picture = photo_background(backgrounds[index % len(backgrounds)], (1200, 1600), rng)
        paste_somewhere(picture, paper, rng)
        path = out / f"receipt-{index:02d}.jpg"
        path.write_bytes(photographed(picture, rng))
        items.append(Item(path.name, "receipts", path, [first, third], [f"{first} {second}"], "\n".join(lines).lower()))
    return items


SCREEN_STYLE = """<style>body{font-family:%s;margin:0;background:#f4f5f7;color:#222}
.top{background:%s;color:#fff;padding:14px 24px;font-size:20px}.main{padding:24px 32px}
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #ccd;padding:6px 12px;font-size:15px}
.card{background:#fff;border-radius:8px;padding:16px 20px;margin:12px 0;box-shadow:0 1px 3px #0002}
.row{display:flex;justify-content:space-between;padding:10px 0;border-bottom:1px solid #eee;font-size:15px}
.muted{color:#777;font-size:13px}button{background:%s;color:#fff;border:0;padding:8px 16px;border-radius:4px}
</style>"""


def screen_html(kind: int, first: str, second: str, third: str, rng: np.random.Generator) -> str:
    """One of six everyday screens with the query words in it; the rest is filler."""
    a, b, c = (html.escape(word.title()) for word in (first, second, third))
    filler = [html.escape(filler_line(rng, int(rng.integers(4, 9)))) for _ in range(12)]
    fonts = ["Liberation Sans, sans-serif", "DejaVu Sans, sans-serif", "Liberation Serif, serif"]
    colours = ["#2b5797", "#1e7145", "#603cba", "#b91d47", "#da532c", "#00aba9"]
    head = SCREEN_STYLE % (fonts[kind % 3], colours[kind % 6], colours[kind % 6])
    if kind % 6 == 0:  # a settings page
        rows = "".join(f'<div class="row"><span>{line}</span><span class="muted">On</span></div>' for line in filler[:7])
        body = (f'<div class="top">Settings</div><div class="main"><h2>{a} {b}</h2><div class="card">{rows}'
                f'<div class="row"><span>Sync with {c}</span><span class="muted">Off</span></div></div>'
                f'<button>Save changes</button></div>')
    elif kind % 6 == 1:  # an e-mail
        paragraphs = "".join(f"<p>{line}.</p>" for line in filler[:6])
        body = (f'<div class="top">Inbox (3)</div><div class="main"><div class="card"><h3>Re: {a} {b}</h3>'
                f'<p class="muted">From: Dana Reyes &lt;dana@example.org&gt; to me, 09:41</p>{paragraphs}'
                f"<p>See you at the {c} on Friday.</p><p>Best, Dana</p></div></div>")
    elif kind % 6 == 2:  # a spreadsheet
        cells = "".join(f"<tr><td>{i + 1}</td><td>{line}</td><td>{rng.uniform(10, 999):.2f}</td><td>Q{i % 4 + 1}</td></tr>"
                        for i, line in enumerate(filler[:9]))
        body = (f'<div class="top">Budget 2026.xlsx</div><div class="main"><h2>{a} {b}</h2><table>'
                f"<tr><th>#</th><th>Item</th><th>Amount</th><th>Quarter</th></tr>{cells}"
                f"<tr><td>10</td><td>{c} services</td><td>420.00</td><td>Q2</td></tr></table></div>")
    elif kind % 6 == 3:  # a chat
        bubbles = "".join(f'<div class="card" style="max-width:60%;{"margin-left:auto" if i % 2 else ""}">{line}</div>'
                          for i, line in enumerate(filler[:6]))
        body = (f'<div class="top">{a} {b} (group)</div><div class="main">{bubbles}'
                f'<div class="card">Meet at the {c} at seven?</div></div>')
    elif kind % 6 == 4:  # a news article
        paragraphs = "".join(f"<p>{line}, {filler[(i + 3) % 12].lower()}.</p>" for i, line in enumerate(filler[:7]))
        body = (f'<div class="top">The Daily Courier</div><div class="main" style="max-width:900px">'
                f'<h1>{a} {b} opens to the public</h1><p class="muted">By staff, 3 min read</p>{paragraphs}'
                f"<p>The {c} will follow next year.</p></div>")
    else:  # a dashboard
        cards = "".join(f'<div class="card" style="flex:1"><div class="muted">{line}</div>'
                        f'<div style="font-size:28px">{rng.integers(10, 9999)}</div></div>' for line in filler[:4])
        body = (f'<div class="top">Dashboard</div><div class="main"><h2>{a} {b}</h2>'
                f'<div style="display:flex;gap:16px">{cards}</div><div class="card">Top source: {c}</div></div>')
    return f"<!doctype html><html><head><meta charset='utf-8'>{head}</head><body>{body}</body></html>"


def make_screenshots(count: int, words: list[str], out: Path, seed: int) -> list[Item]:
    """Headless Chromium screenshots of six kinds of screens, 1280x800 and 1440x900."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("no chromium: no screenshots", flush=True)
        return []
    items = []
    for index in range(count):
        rng = np.random.default_rng(seed + 300 + index)
        first, second, third = words.pop(0), words.pop(0), words.pop(0)
        page = out / f"screen-{index:02d}.html"
        page.write_text(screen_html(index, first, second, third, rng))
        path = out / f"screenshot-{index:02d}.png"
        size = "1280,800" if index % 2 == 0 else "1440,900"
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--force-device-scale-factor=1", f"--user-data-dir={out / 'chromium-profile'}",
                        f"--window-size={size}", f"--screenshot={path}", page.as_uri()],
                       check=True, capture_output=True, timeout=120)
        items.append(Item(path.name, "screenshots", path, [first, third], [f"{first} {second}"],
                          page.read_text().lower()))
    return items


def fetch_real_scans(out: Path) -> tuple[list[Item], str]:
    """OCRmyPDF's real test scans, from its sdist on PyPI; ([], why) when it cannot be had."""
    download = out / "sdist"
    try:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                        OCRMYPDF, "-d", str(download)],
                       check=True, capture_output=True, timeout=300)
        archive = next(download.glob("ocrmypdf-*.tar.gz"))
    except (subprocess.SubprocessError, StopIteration, OSError) as exc:
        return [], f"{OCRMYPDF}'s sdist could not be fetched ({type(exc).__name__})"
    items = []
    with tarfile.open(archive) as tar:
        for name, (words, phrases) in REAL_SCANS.items():
            member = next((m for m in tar.getmembers() if m.name.endswith(f"tests/resources/{name}")), None)
            if member is None:
                continue
            path = out / f"scan-{name}"
            path.write_bytes(tar.extractfile(member).read())
            items.append(Item(path.name, "real scans", path, words, phrases))
    return items, f"{len(items)} test scans from {OCRMYPDF}'s sdist on PyPI (tests/resources)"


def make_clip(path: Path, backgrounds: list[Path], seed: int) -> None:
    """A 3-second 1080p H.264 clip: a real photo behind a sign, a different one each second."""
    with tempfile.TemporaryDirectory() as folder:
        for second in range(3):
            rng = np.random.default_rng(seed + 400 + second)
            frame = photo_background(backgrounds[second % len(backgrounds)], (1920, 1080), rng)
            paste_somewhere(frame, sign(f"{FILLER[second * 7].title()} Street {second + 1}",
                                        font(SIGN_FONTS[second], 72), second, float(rng.uniform(-10, 10))), rng)
            frame.save(Path(folder) / f"{second:03d}.png")
        ffmpeg("-framerate", "1", "-i", str(Path(folder) / "%03d.png"), "-c:v", "libx264", "-pix_fmt", "yuv420p",
               "-r", "25", "-g", "50", str(path))


def check_queries(items: list[Item]) -> None:
    """Every query word is shown by its own picture alone (among the generated ones, whose text is known)."""
    for item in items:
        for word in item.words:
            elsewhere = [other.name for other in items if other is not item and word in other.text]
            if elsewhere:
                raise SystemExit(f"query {word!r} of {item.name} also appears in {elsewhere}")


# -- part 1: the cost of reading ----------------------------------------------------------------------------
def read_costs(engine, settings, category: str, path: Path, timestamps: list[float] | None = None) -> list[Cost]:
    """Each picture of ``path`` decoded and read as the worker does it (ocr.pictures, TextEngine.read)."""
    from services.ingest_worker.ocr import pictures
    from shared.safe_open import open_beneath

    media = {"kind": "video" if timestamps else "photo", "id": 0}
    frames = ([{"id": i, "timestamp": t} for i, t in enumerate(timestamps)] if timestamps
              else [{"id": 0, "timestamp": None}])
    costs = []
    with open_beneath(path, [path.parent]) as source:
        decoded = pictures(source, media, frames, settings)
        while True:
            started = time.perf_counter()
            try:
                _, picture = next(decoded)
            except StopIteration:
                break
            decode_s = time.perf_counter() - started
            started, cpu = time.perf_counter(), time.process_time()
            lines = engine.read(picture)
            costs.append(Cost(category, path.name, picture.size, decode_s, time.perf_counter() - started,
                              time.process_time() - cpu, len(lines)))
    return costs


def clip_reference(model_dir: Path, real_weights: bool, photos: list[Path], seconds: float) -> dict:
    """The CLIP image tower as the embedder builds it, fp32, one thread, batch 16: seconds per image."""
    from services.embedder.model import ClipEmbedder

    model = ClipEmbedder(str(model_dir), random_weights=not real_weights, threads=1)
    pixels = np.stack([model.preprocess(photo.read_bytes()) for photo in photos[:2 * CLIP_BATCH]])
    batches = [pixels[start:start + CLIP_BATCH] for start in range(0, len(pixels) - CLIP_BATCH + 1, CLIP_BATCH)]
    model.embed_pixels(batches[0])  # warm-up
    done, passes = 0, 0
    started, cpu = time.perf_counter(), time.process_time()
    while passes < 2 or time.perf_counter() - started < seconds:
        done += len(model.embed_pixels(batches[passes % len(batches)]))
        passes += 1
    return {"s_per_image": (time.perf_counter() - started) / done, "cpu_s_per_image": (time.process_time() - cpu) / done,
            "images": done, "device": model.device_name}


# -- part 2: the share of queries that find their photo -----------------------------------------------------
def upload_and_read(client: httpx.Client, files: list[Path], timeout: float) -> tuple[dict, float, float]:
    """Upload ``files`` in one job; wait until it is done and the text of every file is read.
    Returns (the job, seconds until done, seconds from done until every text was read)."""
    parts = [("files", (path.name, path.read_bytes(), "application/octet-stream")) for path in files]
    started = time.perf_counter()
    reply = client.post("/uploads", files=parts, data={"folder": "bench-ocr"})
    reply.raise_for_status()
    job_id = reply.json()["job_id"]
    deadline, indexed_at = started + timeout, None
    while True:
        job = client.get(f"/jobs/{job_id}").json()
        if indexed_at is None and job["status"] in ("done", "failed", "cancelled"):
            indexed_at = time.perf_counter()
            print(f"job {job['status']} in {indexed_at - started:.1f}s: {job['indexed']} indexed; reading text...",
                  flush=True)
        if indexed_at is not None and job["text"]["waiting"] == 0:
            return job, indexed_at - started, time.perf_counter() - indexed_at
        if time.perf_counter() > deadline:
            raise RuntimeError(f"job {job_id} not read after {timeout:.0f}s: {job}")
        time.sleep(1.0)


def search(client: httpx.Client, query: str, mode: str) -> tuple[list[str], float]:
    started = time.perf_counter()
    reply = client.get("/search", params={"q": query, "k": SEARCH_K, "mode": mode})
    seconds = time.perf_counter() - started
    reply.raise_for_status()
    return [result["name"] for result in reply.json()["results"]], seconds


def run_queries(client: httpx.Client, items: list[Item]) -> list[Outcome]:
    for warm_up in ("a photo of a dog", "harbour"):
        for mode in MODES:
            search(client, warm_up, mode)
    outcomes = []
    for item in items:
        for kind, queries in (("word", item.words), ("phrase", item.phrases)):
            for query in queries:
                outcome = Outcome(item.name, item.category, kind, query.lower())
                for mode in MODES:
                    names, _ = search(client, outcome.query, mode)
                    outcome.rank[mode] = names.index(item.name) + 1 if item.name in names else None
                outcomes.append(outcome)
    # Latency apart: each mode's query text is new to the embedder's text cache (a two-letter tag, too short
    # to count as a word for the text match), so no mode rides on another's embedding.
    tags = iter(a + b for a in string.ascii_lowercase for b in string.ascii_lowercase)
    for outcome in outcomes:
        for mode in MODES:
            outcome.seconds[mode] = search(client, f"{outcome.query} {next(tags)}", mode)[1]
    return outcomes


def lines_read(client: httpx.Client, catalog_path: Path, names: set[str]) -> dict[str, list[str]]:
    """The lines the worker read in each of the pictures ``names`` (GET /frame/{id}/text)."""
    found: dict[str, list[str]] = {}
    with closing(sqlite3.connect(f"file:{catalog_path}?mode=ro", uri=True)) as conn:
        for name in sorted(names):
            row = conn.execute("SELECT f.id FROM frames f JOIN media m ON m.id = f.media_id WHERE m.name = ?",
                               (name,)).fetchone()
            if row is not None:
                found[name] = [line["text"] for line in client.get(f"/frame/{row[0]}/text").json().get("lines", [])]
    return found


# -- the report ---------------------------------------------------------------------------------------------
def share(outcomes: list[Outcome], mode: str, top: int = 3) -> str:
    if not outcomes:
        return "–"
    hits = sum(1 for outcome in outcomes if outcome.rank[mode] is not None and outcome.rank[mode] <= top)
    return f"{hits / len(outcomes):.0%} ({hits}/{len(outcomes)})"


def cost_rows(costs: list[Cost], clip_cpu: float) -> list[str]:
    rows = []
    for category in dict.fromkeys(cost.category for cost in costs):
        mine = [cost for cost in costs if cost.category == category]
        ocr = [cost.ocr_s for cost in mine]
        cpu = [cost.ocr_cpu_s for cost in mine]
        sizes = sorted({f"{cost.size[0]}x{cost.size[1]}" for cost in mine})
        size = sizes[0] if len(sizes) == 1 else f"{sizes[0]} … {sizes[-1]}" if len(sizes) < 6 else "various"
        rows.append(f"| {category} | {len(mine)} | {size} | {statistics.median(cost.decode_s for cost in mine):.3f} "
                    f"| {statistics.median(ocr):.2f} | {statistics.mean(ocr):.2f} | **{statistics.median(cpu):.2f}** "
                    f"| {statistics.mean(cpu):.2f} | {statistics.median(cost.lines for cost in mine):.0f} "
                    f"| **{statistics.median(cpu) / clip_cpu:.0f}x** |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--signs", type=int, default=20, help="generated signs (1600x1200)")
    parser.add_argument("--documents", type=int, default=3, help="generated A4 pages")
    parser.add_argument("--receipts", type=int, default=3, help="generated receipts on a table")
    parser.add_argument("--screenshots", type=int, default=6, help="headless Chromium screenshots")
    parser.add_argument("--distractors", type=int, default=40, help="ordinary photos of imagenet-sample uploaded too")
    parser.add_argument("--cost-photos", type=int, default=20, help="imagenet-sample photos read for the cost")
    parser.add_argument("--cost-per-category", type=int, default=4, help="text pictures of each kind read for the cost")
    parser.add_argument("--no-real", action="store_true", help="skip fetching OCRmyPDF's real scans from PyPI")
    parser.add_argument("--clip-seconds", type=float, default=8.0, help="the CLIP reference's measurement")
    parser.add_argument("--model", default=str(REPO.parent / "shared" / "models" / "clip-vit-base-patch32"),
                        help="CLIP directory; with weights in it they are used (else random weights)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="for the job and its text reading")
    parser.add_argument("--out", type=Path, default=RESULTS / "ocr.md")
    args = parser.parse_args()
    model_dir = Path(args.model)
    real_weights = any((model_dir / name).exists() for name in WEIGHT_FILES)
    load_before = os.getloadavg()
    all_photos = sorted(PHOTOS.glob("*.JPEG"))
    distractors = all_photos[:args.distractors]
    backgrounds = all_photos[-60:]  # behind the signs and receipts: photos that are not distractors
    started_run = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="bench-ocr-") as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        words = [word for word in POOL if not any(word in other for other in POOL if other != word)
                 and not any(word in filler for filler in FILLER)]
        needed = 2 * args.signs + 3 * (args.documents + args.receipts + args.screenshots)
        if needed > len(words):
            raise SystemExit(f"{needed} query words needed, {len(words)} in the pool: fewer pictures, please")
        np.random.default_rng(7).shuffle(words)
        items = make_signs(args.signs, words, backgrounds, corpus, 1000)
        items += make_documents(args.documents, words, corpus, 1000)
        items += make_receipts(args.receipts, words, backgrounds[20:], corpus, 1000)
        items += make_screenshots(args.screenshots, words, corpus, 1000)
        check_queries(items)
        real, real_note = ([], "skipped (--no-real)") if args.no_real else fetch_real_scans(Path(tmp))
        items += real
        clip_path = corpus / "clip-1080p.mp4"
        make_clip(clip_path, backgrounds[40:], 1000)
        print(f"corpus: {len(items)} text pictures ({time.perf_counter() - started_run:.0f}s); real scans: {real_note}",
              flush=True)

        # Part 1: the cost, on this process's own thread (nothing else of ours running).
        from services.ingest_worker.ocr import TextEngine
        from shared.settings import Settings

        settings = Settings()
        engine = TextEngine(settings.ocr_min_confidence)
        first = read_costs(engine, settings, "first call", distractors[0])[0]
        again = read_costs(engine, settings, "same photo again", distractors[0])[0]
        costs: list[Cost] = []
        for photo in all_photos[:args.cost_photos]:
            costs += read_costs(engine, settings, "ordinary photos (imagenet-sample)", photo)
        for category in ("signs", "documents", "receipts", "screenshots", "real scans"):
            limit = None if category == "real scans" else args.cost_per_category
            for item in [item for item in items if item.category == category][:limit]:
                costs += read_costs(engine, settings, category, item.path)
                print(f"read {item.name}: {costs[-1].ocr_s:.2f}s, {costs[-1].lines} lines", flush=True)
        costs += read_costs(engine, settings, "1080p video frames (H.264)", clip_path, [0.5, 1.5, 2.5])
        clip = clip_reference(model_dir, real_weights, all_photos, args.clip_seconds)
        print(f"CLIP fp32 batch {CLIP_BATCH}, 1 thread: {clip['s_per_image']:.3f} s/image, "
              f"{clip['cpu_s_per_image']:.3f} CPU-s/image", flush=True)

        # Part 2: the stack, OCR on.
        from tools.stack import Stack

        extra = {"MEDIASEARCH_OCR": "1", "MEDIASEARCH_TORCH_THREADS": "0", "MEDIASEARCH_RATE_LIMIT_UPLOAD_PER_MIN": "0",
                 "MEDIASEARCH_RATE_LIMIT_SEARCH_PER_MIN": "0"}
        if real_weights:
            extra["MEDIASEARCH_CLIP_RANDOM_WEIGHTS"] = "0"
        logs = REPO / "test-output" / "bench-ocr-logs"  # kept after the run (the data dir is not)
        shutil.rmtree(logs, ignore_errors=True)
        stack = Stack(env=stack_env(Path(tmp) / "data", model_dir, **extra), log_dir=logs)
        try:
            stack.start(timeout=600)
            s = stack.settings
            with httpx.Client(base_url=f"http://127.0.0.1:{s.gateway_port}", timeout=600,
                              headers={"X-API-Key": TEST_API_KEY}) as client:
                job, index_s, read_s = upload_and_read(client, [item.path for item in items] + distractors,
                                                       args.timeout)
                print(f"text read {read_s:.1f}s after the job: {job['text']}", flush=True)
                outcomes = run_queries(client, items)
                missed = {o.name for o in outcomes if o.rank["both"] is None or o.rank["both"] > 3}
                read_back = lines_read(client, s.catalog_path, missed)
        finally:
            stack.stop()
    load_after = os.getloadavg()
    total_s = time.perf_counter() - started_run

    media = len(items) + len(distractors)
    categories = list(dict.fromkeys(item.category for item in items))
    weights = "real weights from " + model_dir.name if real_weights else "random weights (config only)"
    photo_costs = [cost for cost in costs if cost.category.startswith("ordinary")]
    latency = {mode: sorted(outcome.seconds[mode] for outcome in outcomes) for mode in MODES}
    lines = [
        "# OCR: the cost of reading the words in pictures, and the photos they find",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}; load average "
        f"{load_before[0]:.1f} at the start and {load_after[0]:.1f} at the end (wall times include whatever else ran; "
        f"the CPU-s columns do not). Command: `make bench-ocr` (`.venv/bin/python bench/bench_ocr.py`"
        f"{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}); {total_s / 60:.1f} minutes in all.",
        "",
        "## What one picture costs to read",
        "",
        "The product's path, picture after picture on one thread: `ocr.pictures` decodes the original at up to "
        f"ocr_max_side = {settings.ocr_max_side} px (video: the kept frames decoded again at their timestamps) and "
        "`TextEngine.read` runs PP-OCR (rapidocr, detection + angle classification + recognition, one ONNX Runtime "
        "thread). *decode*: the first step; *read*: the second, wall and CPU seconds; *lines*: lines of text kept "
        f"(confidence >= {settings.ocr_min_confidence}). The reference: the CLIP image tower (ViT-B/32, "
        f"{weights}, fp32, batch {CLIP_BATCH}, forward passes over preprocessed photos, one thread) measured in the "
        f"same run: **{clip['s_per_image']:.3f} s and {clip['cpu_s_per_image']:.3f} CPU-s per image**. "
        "*× a CLIP embedding*: the read's median CPU seconds over the embedding's CPU seconds per image. The CPU "
        "seconds are the figures to compare: the wall seconds grow with whatever else the machine runs (one "
        "thread each, so on an idle core wall and CPU seconds agree). The stack's embedder runs int8 on a CPU by "
        "default, 1.48x fp32's images/s in bench/results/embedder.md, so against it the ratios are about 1.5x higher.",
        "",
        "| pictures | n | read at (px) | decode median s | read median s | read mean s | **read median CPU-s** "
        "| read mean CPU-s | lines (median) | **× a CLIP embedding** |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *cost_rows(costs, clip["cpu_s_per_image"]),
        "",
        f"First call: **{first.ocr_s:.2f} s** to read the first photo of a fresh TextEngine (rapidocr's imports and "
        f"its three ONNX models loaded, then the read); the same photo read again: {again.ocr_s:.2f} s, so loading "
        f"costs about {first.ocr_s - again.ocr_s:.1f} s once per worker process (paid only when OCR is on).",
        "",
        f"Ordinary photos cost {statistics.median(c.ocr_cpu_s for c in photo_costs) / clip['cpu_s_per_image']:.0f} "
        "CLIP embeddings each: the detector finds little text and there is little to recognise. Pictures full of "
        "text cost in proportion to their lines (each line is one recognition pass).",
        "",
        "## How often a word seen in a photo puts that photo in the top 3",
        "",
        f"The whole product on loopback (worker with MEDIASEARCH_OCR=1), {media} files uploaded in one job: "
        f"{len(items)} text pictures ({', '.join(f'{sum(i.category == c for i in items)} {c}' for c in categories)}) "
        f"and {len(distractors)} ordinary photos of imagenet-sample. The job was done after {index_s:.0f} s and "
        f"the worker's reader (one thread, lower CPU priority) had read the text of all {job['text']['read']} "
        f"({job['text']['failed']} failed) {read_s:.0f} s later ({read_s / media:.2f} s a file on this machine). "
        f"Then each text picture is searched for (GET /search, k={SEARCH_K}) by words it shows: *word*: one word "
        "(signs: each of its two words; documents, receipts and screenshots: the title's first word and one word "
        "in the small print); *phrase*: two words side by side on one line. A query counts when the picture is "
        "among the first 3 results. Modes: *both* (the default: CLIP similarity fused with the text match by "
        "reciprocal rank fusion), *visual* (CLIP alone, what search did before OCR), *text* (the text match alone).",
        "",
        f"CLIP here has **{weights}**" + (
            f": the *visual* column is chance level (3 of {media} files: {3 / media:.0%}) and says nothing about "
            "the real model; *both* then stands on the text match alone, and CLIP adds noise to the fusion. The "
            "real model's visual column needs a checkpoint with weights: `--model DIR` (a directory with "
            "model.safetensors or pytorch_model.bin), e.g. `make bench-ocr BENCH_OCR_ARGS=\"--model DIR\"`."
            if not real_weights else "."),
        "",
        "| pictures | queries | kind | **both: top 3** | visual: top 3 | text: top 3 | both: first |",
        "|---|---|---|---|---|---|---|",
    ]
    for category in [*categories, "all"]:
        mine = [o for o in outcomes if category == "all" or o.category == category]
        for kind in ("word", "phrase", "either"):
            chosen = [o for o in mine if kind == "either" or o.kind == kind]
            if kind == "either" and category != "all":
                continue
            label = f"**{category}**" if category == "all" else category
            lines.append(f"| {label} | {len(chosen)} | {kind} | **{share(chosen, 'both')}** | {share(chosen, 'visual')} "
                         f"| {share(chosen, 'text')} | {share(chosen, 'both', 1)} |")
    missed = [f"{o.name}: \"{o.query}\" (read: {' / '.join(read_back.get(o.name, [])) or 'nothing'})"
              for o in outcomes if o.rank["both"] is None or o.rank["both"] > 3]
    lines += [
        "",
        "Queries whose picture was not in the top 3 in mode both, with the lines the worker read in it: "
        + ("; ".join(missed) if missed else "none") + ".",
        "",
        f"Real photos of text: {real_note}" + (
            ": a typewritten recipe in Dutch (a scan, 4000x2864), a scanned brochure page "
            "(2550x3300, two columns) and a map with place names (640x682). No package we could fetch ships "
            "photos of street signs; the signs, documents and receipts above are generated (real photos behind "
            "the signs and receipts, Debian's fonts, blur, noise, JPEG), the screenshots are real renderings."
            if real else ". No real photos of text in this run."),
        "",
        "## Search latency",
        "",
        f"Median (p90) seconds per GET /search from the client, {len(outcomes)} queries each, one at a time, loopback "
        "HTTP included; *both* looks the text up while the query is embedded. Each query text is new to the "
        "embedder's text cache (a two-letter tag added, too short to count for the text match), as a user's "
        "next query is.",
        "",
        "| mode | median s | p90 s |",
        "|---|---|---|",
        *(f"| {mode} | {statistics.median(latency[mode]):.3f} | {latency[mode][int(0.9 * (len(latency[mode]) - 1))]:.3f} |"
          for mode in MODES),
    ]
    report = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    args.out.with_suffix(".json").write_text(json.dumps({
        "clip_reference": clip, "first_call_s": first.ocr_s, "same_photo_again_s": again.ocr_s,
        "costs": [asdict(cost) for cost in costs], "media": media, "index_s": index_s, "read_s": read_s,
        "job_text": job["text"], "real_scans": real_note, "missed_read": read_back, "real_weights": real_weights,
        "queries": [asdict(outcome) for outcome in outcomes]}, indent=1))
    print(report)


if __name__ == "__main__":
    main()
