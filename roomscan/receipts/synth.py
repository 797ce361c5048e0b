"""Generated receipts with exact ground truth: several layouts, fonts, price and date formats, photo damage.

Each receipt is an image plus a ground-truth JSON (the schema :mod:`roomscan.receipts.evaluate` reads). ``clean``
receipts are flat scans; ``degraded`` ones lie on a textured table, rotated, in perspective, unevenly lit, blurred
and JPEG-compressed.

Example:
    >>> from roomscan.receipts.synth import write_receipts
    >>> write_receipts("eval/clean", n=40, seed=0)                   # doctest: +SKIP
    >>> write_receipts("eval/degraded", n=40, seed=1, degraded=True)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

__all__ = ["SynthReceipt", "make_receipt", "render", "write_receipts"]

FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/liberation")
FONT_FILES = (
    "DejaVuSansMono.ttf",
    "LiberationMono-Regular.ttf",
    "DejaVuSans.ttf",
    "LiberationSans-Regular.ttf",
    "DejaVuSansCondensed.ttf",
    "LiberationSansNarrow-Regular.ttf",
)
MERCHANTS = (
    "GREEN LEAF CAFE",
    "CORNER MARKET",
    "BLUE BOTTLE BAKERY",
    "CITY HARDWARE",
    "SUNRISE DINER",
    "MAPLE GROCERY",
    "RIVERSIDE PHARMACY",
    "THE BOOK NOOK",
    "GOLDEN WOK",
    "NORTH STAR FUEL",
)
STREETS = (
    "Main St",
    "Oak Avenue",
    "High Street",
    "Market Rd",
    "Elm St",
    "Station Road",
    "King St",
    "Park Lane",
)
CITIES = (
    "Springfield, IL 62701",
    "Portland, OR 97205",
    "London SW1A 1AA",
    "Berlin 10115",
    "Austin, TX 78701",
    "Dublin D02 X285",
    "Denver, CO 80202",
    "Paris 75002",
)
ITEMS = (
    "Coffee",
    "Latte",
    "Croissant",
    "Bagel",
    "Orange Juice",
    "Milk 1L",
    "Bread",
    "Eggs 12pk",
    "Apples",
    "Bananas",
    "Cheddar",
    "Pasta",
    "Tomatoes",
    "Olive Oil",
    "Screws 50pk",
    "Tape",
    "Notebook",
    "Pen Set",
    "Sandwich",
    "Soup",
    "Salad",
    "Tea",
    "Muffin",
    "Water 500ml",
    "Chocolate",
    "Yogurt",
    "Rice 1kg",
    "Soap",
)
CURRENCIES = (("USD", "$", "{s}{v}"), ("EUR", "€", "{v} {s}"), ("GBP", "£", "{s}{v}"), ("USD", "", "{v}"))
DATE_FORMATS = ("%m/%d/%Y", "%d/%m/%Y", "%Y-%m-%d", "%d.%m.%Y", "%b %d, %Y", "%d %b %Y", "%m-%d-%y")
PAYMENTS = ("VISA", "MASTERCARD", "CASH", "AMEX", "DEBIT")


@dataclass(frozen=True)
class SynthReceipt:
    """A generated receipt: what it says (``truth``) and how it is drawn (``lines``)."""

    truth: dict[str, object]
    lines: tuple[tuple[str, str], ...]  # (left text, right text); right-aligned part may be ""
    font: str
    centred_header: bool


def _money(value: Decimal, fmt: str, symbol: str, decimal_comma: bool, with_symbol: bool) -> str:
    text = f"{value:.2f}"
    if decimal_comma:
        text = text.replace(".", ",")
    return fmt.format(s=symbol, v=text).strip() if with_symbol and symbol else text


def make_receipt(rng: random.Random) -> SynthReceipt:
    """A random receipt: header, 2-7 items, subtotal, tax, optional tip, total, payment."""
    currency, symbol, fmt = rng.choice(CURRENCIES)
    decimal_comma = currency == "EUR" and rng.random() < 0.5
    all_symbols = rng.random() < 0.4
    day = date(2024, 1, 1).toordinal() + rng.randrange(700)
    when = datetime.combine(date.fromordinal(day), time(rng.randrange(7, 22), rng.randrange(60)))
    date_fmt = rng.choice(DATE_FORMATS)
    if currency in ("EUR", "GBP") and date_fmt.startswith("%m"):
        date_fmt = "%d/%m/%Y"  # the receipt's own evidence: European currency, European dates
    if currency == "USD" and date_fmt.startswith("%d/"):
        date_fmt = "%m/%d/%Y"
    merchant = rng.choice(MERCHANTS)
    address = f"{rng.randrange(1, 999)} {rng.choice(STREETS)}"
    city = rng.choice(CITIES)
    phone = f"({rng.randrange(200, 999)}) {rng.randrange(200, 999)}-{rng.randrange(1000, 9999)}"

    items = []
    for name in rng.sample(ITEMS, rng.randrange(2, 8)):
        qty = rng.choice((1, 1, 1, 2, 3))
        unit = Decimal(rng.randrange(99, 2500)) / 100
        items.append(
            {"name": name, "quantity": qty, "unit_price": f"{unit:.2f}", "amount": f"{unit * qty:.2f}"}
        )
    subtotal = sum(Decimal(i["amount"]) for i in items)
    rate = rng.choice((Decimal("0.05"), Decimal("0.08"), Decimal("0.10"), Decimal("0.20")))
    tax = (subtotal * rate).quantize(Decimal("0.01"))
    tip = (subtotal * Decimal("0.15")).quantize(Decimal("0.01")) if rng.random() < 0.25 else None
    total = subtotal + tax + (tip or Decimal(0))
    payment = rng.choice(PAYMENTS)

    def m(v: Decimal | str, force: bool = False) -> str:
        return _money(Decimal(v), fmt, symbol, decimal_comma, all_symbols or force)

    lines: list[tuple[str, str]] = [(merchant, ""), (address, ""), (city, ""), (f"Tel {phone}", ""), ("", "")]
    lines.append((f"Date: {when.strftime(date_fmt)}", f"Time: {when.strftime('%H:%M')}"))
    lines.append(("", ""))
    for item in items:
        if item["quantity"] > 1 and rng.random() < 0.5:
            lines.append((item["name"], ""))
            lines.append((f"  {item['quantity']} @ {m(item['unit_price'])}", m(item["amount"])))
        elif item["quantity"] > 1:
            lines.append((f"{item['quantity']} x {item['name']}", m(item["amount"])))
        else:
            lines.append((item["name"], m(item["amount"])))
    lines.append(("", ""))
    lines.append(("SUBTOTAL", m(subtotal)))
    lines.append((f"TAX {rate * 100:.0f}%", m(tax)))
    if tip is not None:
        lines.append(("TIP", m(tip)))
    lines.append(("TOTAL", m(total, force=True)))
    lines.append((payment, m(total)))
    lines.append(("", ""))
    lines.append(("THANK YOU!", ""))

    truth: dict[str, object] = {
        "merchant": merchant,
        "address": f"{address}, {city}",
        "phone": phone,
        "date": when.date().isoformat(),
        "time": when.strftime("%H:%M"),
        "currency": currency if symbol else None,  # no symbol printed: no evidence of the currency
        "items": items,
        "subtotal": f"{subtotal:.2f}",
        "tax": f"{tax:.2f}",
        "tip": f"{tip:.2f}" if tip is not None else None,
        "total": f"{total:.2f}",
        "payment_method": payment.lower(),
    }
    truth["text"] = "\n".join(" ".join(p for p in line if p).strip() for line in lines if any(line))
    font = rng.choice(FONT_FILES)
    return SynthReceipt(truth=truth, lines=tuple(lines), font=font, centred_header=rng.random() < 0.6)


def _font(name: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for folder in FONT_DIRS:
        path = Path(folder) / name
        if path.exists():
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size)


def render(receipt: SynthReceipt, *, width: int = 520, font_size: int = 22) -> Image.Image:
    """Draw the receipt flat on white paper (a clean scan)."""
    font = _font(receipt.font, font_size)
    line_h = int(font_size * 1.45)
    margin = 28
    image = Image.new("L", (width, margin * 2 + line_h * len(receipt.lines)), 255)
    draw = ImageDraw.Draw(image)
    for row, (left, right) in enumerate(receipt.lines):
        y = margin + row * line_h
        if row < 4 and receipt.centred_header:
            x = (width - draw.textlength(left, font=font)) / 2
            draw.text((x, y), left, fill=20, font=font)
            continue
        draw.text((margin, y), left, fill=20, font=font)
        if right:
            draw.text((width - margin - draw.textlength(right, font=font), y), right, fill=20, font=font)
    return image.convert("RGB")


def _background(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A wood-or-cloth-like table: a base colour, low-frequency stripes, noise. [h, w, 3] uint8."""
    w, h = size
    base = rng.uniform(40, 150, size=3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    stripes = np.sin(xx / rng.uniform(6, 30) + np.sin(yy / rng.uniform(40, 120)) * 3) * rng.uniform(5, 25)
    noise = rng.normal(0, 8, size=(h, w))
    out = base[None, None, :] + (stripes + noise)[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


def degrade(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Photograph a flat receipt: table around it, rotation, perspective, uneven light, blur, JPEG artefacts."""
    import io

    import cv2

    paper = np.asarray(image.convert("RGB"))
    h, w = paper.shape[:2]
    pad_x, pad_y = int(w * rng.uniform(0.25, 0.5)), int(h * rng.uniform(0.12, 0.25))
    canvas_w, canvas_h = w + 2 * pad_x, h + 2 * pad_y
    angle = np.deg2rad(rng.uniform(-8, 8))
    cx, cy = canvas_w / 2, canvas_h / 2
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32) - [w / 2, h / 2]
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], dtype=np.float32)
    dst = corners @ rot.T + [cx, cy]
    dst += rng.uniform(-0.04, 0.04, size=dst.shape).astype(np.float32) * [w, h]  # perspective: corners pulled
    matrix = cv2.getPerspectiveTransform(
        np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32), dst.astype(np.float32)
    )
    table = _background(rng, (canvas_w, canvas_h))
    warped = cv2.warpPerspective(paper, matrix, (canvas_w, canvas_h), flags=cv2.INTER_LINEAR)
    mask = (
        cv2.warpPerspective(np.full((h, w), 255, np.uint8), matrix, (canvas_w, canvas_h))[..., None] / 255.0
    )
    photo = warped * mask + table * (1 - mask)
    # Uneven light: a linear gradient plus a soft shadow blob.
    yy, xx = np.mgrid[0:canvas_h, 0:canvas_w].astype(np.float32)
    gx, gy = rng.uniform(-1, 1, size=2)
    light = 1.0 - 0.25 * ((xx / canvas_w - 0.5) * gx + (yy / canvas_h - 0.5) * gy + 0.5)
    sx, sy = rng.uniform(0, canvas_w), rng.uniform(0, canvas_h)
    light -= 0.18 * np.exp(-(((xx - sx) / (canvas_w * 0.3)) ** 2 + ((yy - sy) / (canvas_h * 0.3)) ** 2))
    photo = np.clip(photo * light[..., None] * rng.uniform(0.85, 1.0), 0, 255).astype(np.uint8)
    out = Image.fromarray(photo).filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.1)))
    buf = io.BytesIO()
    out.save(buf, "JPEG", quality=int(rng.integers(45, 80)))
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def write_receipts(folder: str | Path, n: int, *, seed: int = 0, degraded: bool = False) -> list[Path]:
    """Write ``n`` receipts as ``receipt_###.jpg`` (or ``.png`` when clean) + ``receipt_###.json``; return images."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    np_rng = np.random.default_rng(seed)
    paths = []
    for index in range(n):
        receipt = make_receipt(rng)
        image = render(receipt, font_size=rng.choice((20, 22, 24)))
        stem = folder / f"receipt_{index:03d}"
        if degraded:
            path = stem.with_suffix(".jpg")
            degrade(image, np_rng).save(path, quality=92)
        else:
            path = stem.with_suffix(".png")
            image.save(path)
        stem.with_suffix(".json").write_text(json.dumps(receipt.truth, indent=2, ensure_ascii=False) + "\n")
        paths.append(path)
    return paths
