"""Build the small image-text dataset shipped with hf_coreset from Debian's Open Clip Art packages.

Source: the Debian packages ``openclipart-png`` and ``openclipart-svg`` (version 1:0.18+dfsg-19),
public-domain drawings from the Open Clip Art Library. Each PNG has an SVG twin at the same relative
path; the SVG's ``<metadata>`` RDF block (``cc:Work``) holds the title, description and keywords that
we turn into a caption.

Rebuild the shipped file (a ~155 MB download, then about 3.5 minutes on 2 cores and up to 5 GB of
memory, because a few PNGs in the package are enormous)::

    python scripts/build_openclipart.py --output hf_coreset/data/openclipart_2k.parquet --max-items 2000

Leave out ``--max-items`` to keep every usable drawing (for a full-size benchmark).

Rules, in the order they are applied to each PNG (the reported drop reasons):

1. ``symlink_duplicate`` - the packages list some drawings under several categories through
   symlinks; we keep each drawing once, under the category where the real file lives.
2. ``no_svg_twin`` - no SVG at the same relative path, so no metadata for a caption.
3. ``generic_title`` - the title carries no information (see ``is_generic_title``).
4. ``shared_title`` - the same title is used by more than ``max_title_share`` drawings. In this release
   such titles name a collection or an author rather than the drawing ("gramastar" on 1,375 drawings,
   "Part of the Flat Icon Collection (...)", "Lemon SVG theme", "card" ...), so the caption would
   not describe the picture.
5. ``unreadable_png`` - Pillow cannot decode the PNG.
6. ``not_sampled`` - usable, but not in the ``--max-items`` sample.

Every PNG path in the package is either a row or counted under exactly one of these reasons.
"""

from __future__ import annotations

import argparse
import html
import io
import random
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from pathlib import Path

PACKAGES = ("openclipart-png", "openclipart-svg")
# Where the packages put the drawings, relative to the folder the .debs are extracted into.
PNG_DIR = Path("usr/share/openclipart/png")
SVG_DIR = Path("usr/share/openclipart/svg")

DC_NS = "{http://purl.org/dc/elements/1.1/}"
RDF_NS = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"

# Why a PNG in the package does not become a row, in the order the checks run (see module docstring).
DROP_REASONS = (
    "symlink_duplicate",
    "no_svg_twin",
    "generic_title",
    "shared_title",
    "unreadable_png",
    "not_sampled",
)

DEFAULT_CACHE_DIR = Path("~/.cache/hf_coreset/openclipart")
DEFAULT_MAX_TITLE_SHARE = 10
MAX_DESCRIPTION_CHARS = 200
# The largest PNG in the packages has 623 million pixels (about 2.5 GB once decoded as RGBA).
MAX_PNG_PIXELS = 700_000_000

# Words that say "this is a picture" without saying of what. A title made only of these words,
# stop words and numbers is generic ("Untitled", "image", "clip art", "new-1", "drawing 3").
# Not "clip" on its own: "Clips" in office/ are paper clips.
PLACEHOLDER_WORDS = frozenset(
    """untitled unnamed noname title image img picture pic drawing draw sketch graphic graphics
    art clipart svg png icon file document doc layer path figure fig new test copy temp tmp
    none null nil empty default sample example""".split()
)
STOP_WORDS = frozenset("a an the of and or for by with in on at to from".split())
FILE_EXTENSION = re.compile(r"\.(svgz?|png|jpe?g|gif|ai|eps|pdf|py)$", re.IGNORECASE)
# "Clipart by Nicu Buculei - pear": the useful part is after the author's name.
AUTHOR_PREFIX = re.compile(r"^clip ?art by [^-]+ - ", re.IGNORECASE)
# Leftovers of a broken export script in this release: "HASH(0x868b0e8)" as description or keyword.
PERL_HASH = re.compile(r"^hash(\(0x[0-9a-f]+\))?$", re.IGNORECASE)
EMAIL = re.compile(r"^\S+@\S+\.\w+$")


# --------------------------------------------------------------------------- fetching


def fetch_packages(cache_dir: str | Path) -> Path:
    """Download the two Debian packages into ``cache_dir`` and extract them into ``cache_dir/root``.

    ``apt-get download`` needs no root, but it needs up-to-date package lists. Nothing is done when
    ``cache_dir/root`` already holds the drawings. Returns the extraction root.
    """
    cache_dir = Path(cache_dir).expanduser()
    root = cache_dir / "root"
    if (root / PNG_DIR).is_dir() and (root / SVG_DIR).is_dir():
        return root
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"`{tool}` not found: building this dataset needs a Debian or Ubuntu system.")
    cache_dir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["apt-get", "download", *PACKAGES], cwd=cache_dir, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"`apt-get download {' '.join(PACKAGES)}` failed (run `apt-get update` first?):\n{result.stderr}"
        )
    root.mkdir(exist_ok=True)
    for package in PACKAGES:
        # Pick the newest download if the cache holds several versions.
        deb = sorted(cache_dir.glob(f"{package}_*.deb"))[-1]
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


# --------------------------------------------------------------------------- metadata and captions


def _text(element: ET.Element | None) -> str:
    """Text of an element with whitespace collapsed ('' when missing).

    Some files escape HTML entities twice ("&amp;eacute;toile"), so decode them once more.
    """
    if element is None or element.text is None:
        return ""
    return " ".join(html.unescape(element.text).split())


def _find_work(svg_root: ET.Element) -> ET.Element | None:
    """The RDF ``Work`` element that describes the drawing, whatever namespace the file uses for it.

    Several Open Clip Art namespaces exist for ``cc:`` (web.resource.org/cc/, creativecommons.org/ns#),
    so match the local name only.
    """
    for element in svg_root.iter():
        if isinstance(element.tag, str) and element.tag.rsplit("}", 1)[-1] == "Work":
            return element
    return None


def read_svg_metadata(svg_path: str | Path) -> dict:
    """Read title, description and keywords from an SVG's RDF metadata.

    Only the direct ``dc:`` children of ``cc:Work`` are used: ``dc:title`` also appears inside the
    creator and publisher ``cc:Agent`` blocks, where it holds a person's name. Never raises: a
    missing or malformed file gives empty fields.
    """
    empty = {"title": "", "description": "", "keywords": []}
    try:
        svg_root = ET.parse(svg_path).getroot()
    except (ET.ParseError, OSError, ValueError):
        return empty
    work = _find_work(svg_root)
    if work is None:
        return empty
    keywords = [_text(li) for li in work.iterfind(f"{DC_NS}subject/{RDF_NS}Bag/{RDF_NS}li")]
    return {
        "title": _text(work.find(f"{DC_NS}title")),
        "description": _text(work.find(f"{DC_NS}description")),
        "keywords": [keyword for keyword in keywords if keyword],
    }


def clean_title(title: str) -> str:
    """Make a raw title readable: no "Clipart by <author> - " prefix, file extension or underscores."""
    title = AUTHOR_PREFIX.sub("", title.strip())
    title = FILE_EXTENSION.sub("", title)
    return " ".join(title.replace("_", " ").split())


def is_generic_title(title: str) -> bool:
    """True when a title says nothing about what is drawn.

    Rule: split the title into words on anything that is not a letter or digit, drop a trailing
    file extension and any digits glued to words ("new-1", "image001", "drawing.svg"), and ignore
    stop words. The title is generic when nothing is left, or when every word left is a placeholder
    word (``PLACEHOLDER_WORDS``: "untitled", "image", "drawing", "clipart", "svg", "new", ...).
    So "", "Untitled", "clip art", "new-1", "12" and "image001.png" are generic; "Sun", "Clips" and
    "bee1" are not.
    """
    stem = FILE_EXTENSION.sub("", title.strip().lower())
    stem = re.sub(r"clip[\s_-]*art", "clipart", stem)  # "clip art" is one placeholder, "clip" is not
    words = [re.sub(r"\d+", "", word) for word in re.split(r"[^a-z0-9]+", stem)]
    words = [word for word in words if word and word not in STOP_WORDS]
    # A plural placeholder ("images", "icons") is as empty as the singular one.
    return all(word in PLACEHOLDER_WORDS or word.rstrip("s") in PLACEHOLDER_WORDS for word in words)


def _clean_description(description: str, title: str) -> str:
    """Drop descriptions that add nothing (a copy of the title, an e-mail address, "HASH(0x...)")
    and shorten long ones to about ``MAX_DESCRIPTION_CHARS`` characters at a word boundary."""

    def same(a: str, b: str) -> bool:
        return a.lower().rstrip(".!? ") == b.lower().rstrip(".!? ")

    if same(description, title) or EMAIL.match(description) or PERL_HASH.match(description):
        return ""
    if len(description) > MAX_DESCRIPTION_CHARS:
        description = description[:MAX_DESCRIPTION_CHARS].rsplit(" ", 1)[0].rstrip(",;:.") + "..."
    return description


def _clean_keywords(keywords: list[str]) -> list[str]:
    """Keywords with underscores as spaces, export-script junk removed and duplicates dropped."""
    cleaned: list[str] = []
    for keyword in keywords:
        keyword = " ".join(keyword.replace("_", " ").split()).lower()
        if keyword and not PERL_HASH.match(keyword) and keyword not in cleaned:
            cleaned.append(keyword)
    return cleaned


def make_caption(meta: dict) -> str:
    """Caption "Title. Description. Keywords: a, b, c" from ``read_svg_metadata`` output.

    The title is cleaned with ``clean_title``; empty parts are left out.
    """
    title = clean_title(meta.get("title", ""))
    parts = [title, _clean_description(meta.get("description", ""), title)]
    keywords = _clean_keywords(meta.get("keywords", []))
    if keywords:
        parts.append("Keywords: " + ", ".join(keywords))
    # Close each part with a full stop unless it already ends with punctuation.
    sentences = [part if part[-1] in ".!?" else part + "." for part in parts if part]
    return " ".join(sentences)


# --------------------------------------------------------------------------- images


def make_thumbnail(png_path: Path, thumb_size: int = 96) -> bytes:
    """PNG bytes of the drawing on a white background, at most ``thumb_size`` px on the longer side.

    Clip art is mostly transparent; compositing on white keeps it visible for RGB models. We store
    optimised PNG rather than JPEG because flat colours and thin lines compress well losslessly and
    JPEG would ring around the edges. Raises ``OSError`` for an unreadable or absurdly large PNG.
    """
    from PIL import Image

    # Some PNGs in the package were exported at up to 21,000 x 30,000 px, above Pillow's
    # decompression-bomb limit. The files are trusted, so lift the limit for this call only.
    previous_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, MAX_PNG_PIXELS
    try:
        image = Image.open(png_path)
        image.load()  # reads the pixels and closes the file
        # Skip the copy when the PNG already is RGBA: a copy of the largest one costs 2.5 GB.
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
    except Image.DecompressionBombError as error:
        raise OSError(str(error)) from error
    finally:
        Image.MAX_IMAGE_PIXELS = previous_limit
    # Shrink first (Pillow resizes RGBA with premultiplied alpha, so this matches compositing first),
    # which keeps memory low for the huge files.
    rgba.thumbnail((thumb_size, thumb_size), Image.Resampling.LANCZOS)
    canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    canvas.alpha_composite(rgba)
    buffer = io.BytesIO()
    canvas.convert("RGB").save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


# --------------------------------------------------------------------------- records


def list_drawings(root: Path, dropped: Counter) -> list[tuple[Path, Path]]:
    """(PNG, SVG twin) pairs relative to the package folders, sorted, one per real (non-symlink) PNG.

    Symlinked PNGs and PNGs without an SVG twin are counted in ``dropped``.
    """
    png_dir, svg_dir = root / PNG_DIR, root / SVG_DIR
    pairs = []
    for png_path in sorted(png_dir.rglob("*.png")):
        if png_path.is_symlink():
            dropped["symlink_duplicate"] += 1
            continue
        png_relative = png_path.relative_to(png_dir)
        svg_relative = png_relative.with_suffix(".svg")
        if not (svg_dir / svg_relative).exists():
            dropped["no_svg_twin"] += 1
            continue
        pairs.append((png_relative, svg_relative))
    return pairs


def stratified_sample(items: list[dict], max_items: int | None, seed: int) -> list[dict]:
    """Choose ``max_items`` records with each category in proportion to its size (at least one each).

    Deterministic: the input is sorted by path and the RNG is seeded. Quotas are rounded down, the
    seats left over go to the largest remainders, so they add up to ``max_items`` exactly.
    """
    if max_items is None or max_items >= len(items):
        return items
    by_category: dict[str, list[dict]] = defaultdict(list)
    for item in items:
        by_category[item["category"]].append(item)
    categories = sorted(by_category)
    if max_items < len(categories):
        raise ValueError(f"max_items={max_items} is smaller than the {len(categories)} categories")
    exact = {c: max_items * len(by_category[c]) / len(items) for c in categories}
    quota = {c: int(exact[c]) for c in categories}
    by_remainder = sorted(categories, key=lambda c: (quota[c] - exact[c], c))
    for category in by_remainder[: max_items - sum(quota.values())]:
        quota[category] += 1
    # A tiny category still gets one row, taken from the largest quota.
    for category in categories:
        if quota[category] == 0:
            quota[category] = 1
            quota[max(quota, key=quota.get)] -= 1
    rng = random.Random(seed)
    chosen = []
    for category in categories:
        chosen.extend(rng.sample(by_category[category], quota[category]))
    return sorted(chosen, key=lambda item: item["source_path"])


def build_records(
    root: str | Path,
    max_items: int | None = None,
    thumb_size: int = 96,
    seed: int = 0,
    max_title_share: int = DEFAULT_MAX_TITLE_SHARE,
) -> tuple[list[dict], Counter]:
    """Pair PNGs with SVG twins, filter, thumbnail and sample them.

    Returns the records (dicts with ``image`` PNG bytes, ``caption``, ``title``, ``category``,
    ``source_path``) and a Counter of skipped drawings per reason. ``max_title_share=0`` switches
    the shared-title rule off.
    """
    root = Path(root)
    dropped: Counter = Counter(dict.fromkeys(DROP_REASONS, 0))  # zeros too, so every reason is printed
    candidates = []
    for png_relative, svg_relative in list_drawings(root, dropped):
        meta = read_svg_metadata(root / SVG_DIR / svg_relative)
        title = clean_title(meta["title"])
        if is_generic_title(title):
            dropped["generic_title"] += 1
            continue
        candidates.append(
            {
                "png": root / PNG_DIR / png_relative,
                "meta": meta,
                "title": title,
                "category": svg_relative.parts[0],
                "source_path": str(SVG_DIR / svg_relative),
            }
        )

    if max_title_share > 0:
        title_counts = Counter(item["title"].lower() for item in candidates)
        kept = [item for item in candidates if title_counts[item["title"].lower()] <= max_title_share]
        dropped["shared_title"] = len(candidates) - len(kept)
        candidates = kept

    # Thumbnail before sampling so that unreadable PNGs never leave the sample short of max_items.
    records = []
    for item in candidates:
        try:
            image = make_thumbnail(item["png"], thumb_size)
        except OSError:
            dropped["unreadable_png"] += 1
            continue
        records.append(
            {
                "image": image,
                "caption": make_caption(item["meta"]),
                "title": item["title"],
                "category": item["category"],
                "source_path": item["source_path"],
            }
        )
    sample = stratified_sample(records, max_items, seed)
    dropped["not_sampled"] = len(records) - len(sample)
    return sample, dropped


def write_dataset(records: list[dict], output: str | Path) -> Path:
    """Write records as parquet through ``datasets`` so the ``Image`` feature is kept in the metadata."""
    from datasets import Dataset, Features, Image, Value

    features = Features(
        {
            "image": Image(),
            "caption": Value("string"),
            "title": Value("string"),
            "category": Value("string"),
            "source_path": Value("string"),
        }
    )
    columns = {name: [record[name] for record in records] for name in features}
    # Image() accepts {"bytes", "path"} dicts and stores the PNG bytes untouched.
    columns["image"] = [{"bytes": image, "path": None} for image in columns["image"]]
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    Dataset.from_dict(columns, features=features).to_parquet(str(output))
    return output


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, help="parquet file to write")
    parser.add_argument("--max-items", type=int, default=None, help="rows to keep (default: all)")
    parser.add_argument("--cache-dir", default=str(DEFAULT_CACHE_DIR), help="where the .debs go")
    parser.add_argument("--thumb-size", type=int, default=96, help="longest side of thumbnails, px")
    parser.add_argument("--seed", type=int, default=0, help="seed of the stratified sample")
    parser.add_argument(
        "--max-title-share",
        type=int,
        default=DEFAULT_MAX_TITLE_SHARE,
        help="drop drawings whose title is used by more drawings than this (0: keep them)",
    )
    args = parser.parse_args(argv)

    root = fetch_packages(args.cache_dir)
    records, dropped = build_records(root, args.max_items, args.thumb_size, args.seed, args.max_title_share)
    output = write_dataset(records, args.output)

    print(f"rows kept: {len(records)}")
    for reason in DROP_REASONS:
        print(f"dropped ({reason}): {dropped[reason]}")
    categories = Counter(record["category"] for record in records)
    print(f"categories: {len(categories)}")
    for category, count in sorted(categories.items()):
        print(f"  {category}: {count}")
    print(f"file: {output} ({output.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
