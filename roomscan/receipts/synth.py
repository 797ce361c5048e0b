"""Generated receipts with exact ground truth: several countries, languages, layouts, fonts and photo damage.

Each receipt is an image plus a ground-truth JSON (the schema :mod:`roomscan.receipts.evaluate` reads). A receipt
follows one country's conventions (:data:`LOCALES`: currency and how it is printed, date order and format,
decimal comma, summary keywords) and mixes in what real tills print around the fields: receipt/invoice numbers,
cashier, table and order lines, separator rules, dates glued to times. ``clean`` receipts are flat scans;
``degraded`` ones lie on a textured table, tilted, in perspective, unevenly lit, blurred and JPEG-compressed;
``rotated`` ones are also turned by any angle, upside down included.

The fields rules are tuned on these receipts only; :mod:`roomscan.receipts.holdout` is the split they never see.

Example:
    >>> from roomscan.receipts.synth import write_receipts
    >>> write_receipts("eval/clean", n=40, seed=0)                   # doctest: +SKIP
    >>> write_receipts("eval/degraded", n=40, seed=1, degraded=True)  # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from roomscan.receipts.fonts import TUNED_FONTS, load_font
from roomscan.receipts.synth_locales import LOCALES, Locale

__all__ = ["LOCALES", "Locale", "SynthReceipt", "degrade", "make_receipt", "render", "write_receipts"]


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
NAMES = ("Anna", "Ben", "Chloe", "David", "Elena", "Marco", "Sofia", "Tom")
PAYMENTS = ("VISA", "MASTERCARD", "CASH", "AMEX", "DEBIT", "MAESTRO")
SEPARATORS = ("-" * 30, "=" * 30, "*" * 24, "- " * 15)


@dataclass(frozen=True)
class SynthReceipt:
    """A generated receipt: what it says (``truth``) and how it is drawn (``lines``)."""

    truth: dict[str, object]
    lines: tuple[tuple[str, str], ...]  # (left text, right text); right-aligned part may be ""
    font: str
    centred_header: bool


def _digits(rng: random.Random, pattern: str) -> str:
    return "".join(str(rng.randrange(10)) if c == "#" else c for c in pattern)


def _strftime(when: datetime, fmt: str, months: tuple[str, ...]) -> str:
    return when.strftime(fmt.replace("%b", months[when.month - 1]))


def make_receipt(rng: random.Random, fonts: tuple[str, ...] = TUNED_FONTS) -> SynthReceipt:
    """A random receipt of a random :data:`LOCALES` country: header, 2-7 items, summary, payment."""
    loc = rng.choice(LOCALES)
    money_fmt = rng.choice(loc.money_formats)
    all_symbols = rng.random() < 0.4
    day = date(2024, 1, 1).toordinal() + rng.randrange(700)
    when = datetime.combine(date.fromordinal(day), time(rng.randrange(7, 22), rng.randrange(60)))
    date_fmt = rng.choice(loc.date_formats)
    merchant = rng.choice(MERCHANTS)
    address = f"{rng.randrange(1, 999)} {rng.choice(STREETS)}"
    city = rng.choice(loc.cities)
    phone = _digits(rng, rng.choice(loc.phones))

    items: list[dict[str, Any]] = []
    for name in rng.sample(ITEMS, rng.randrange(2, 8)):
        qty = rng.choice((1, 1, 1, 2, 3))
        unit = Decimal(rng.randrange(99, 2500)) / 100
        items.append(
            {"name": name, "quantity": qty, "unit_price": f"{unit:.2f}", "amount": f"{unit * qty:.2f}"}
        )
    subtotal = sum((Decimal(i["amount"]) for i in items), Decimal(0))
    rate = rng.choice((Decimal("0.05"), Decimal("0.08"), Decimal("0.10"), Decimal("0.20")))
    tax = (subtotal * rate).quantize(Decimal("0.01"))
    tip = (subtotal * Decimal("0.15")).quantize(Decimal("0.01")) if rng.random() < 0.2 else None
    total = subtotal + tax + (tip or Decimal(0))
    payment = rng.choice(PAYMENTS)

    def m(v: Decimal | str, force: bool = False) -> str:
        text = f"{Decimal(v):.2f}"
        if loc.decimal_comma:
            text = text.replace(".", ",")
        if not (all_symbols or force) or money_fmt == "{v}":
            return text
        return money_fmt.format(v=text, s="", c=loc.currency).strip()

    def extra() -> str:
        return rng.choice(loc.header_extras).format(
            n=rng.randrange(100, 99999), name=rng.choice(NAMES), t=rng.randrange(1, 40)
        )

    lines: list[tuple[str, str]] = [(merchant, ""), (address, ""), (city, ""), (phone, "")]
    if rng.random() < 0.5 and phone[0] in "+(0123456789":
        lines[3] = (f"Tel {phone}", "")
    separator = rng.choice(SEPARATORS) if rng.random() < 0.5 else ""
    lines.append((separator, ""))
    if rng.random() < 0.5:
        lines.append((extra(), ""))
    day_text, clock = _strftime(when, date_fmt, loc.months), when.strftime("%H:%M")
    style = rng.randrange(4)
    if style == 0:
        lines.append((f"Date: {day_text}", f"Time: {clock}"))
    elif style == 1:
        lines.append((day_text, clock))
    elif style == 2:  # what OCR often reads: the space between date and time lost
        lines.append((f"{day_text}{clock}", ""))
    else:
        lines.append((f"{day_text} {clock}", extra()))
    if rng.random() < 0.6:
        lines.append((extra(), ""))
    lines.append((separator, ""))
    for item in items:
        if item["quantity"] > 1 and rng.random() < 0.5:
            lines.append((item["name"], ""))
            lines.append((f"  {item['quantity']} @ {m(item['unit_price'])}", m(item["amount"])))
        elif item["quantity"] > 1:
            lines.append((f"{item['quantity']} x {item['name']}", m(item["amount"])))
        else:
            lines.append((item["name"], m(item["amount"])))
    lines.append((separator, ""))
    lines.append((rng.choice(loc.subtotal), m(subtotal)))
    tax_label = rng.choice(loc.tax)
    if "%" not in tax_label:
        tax_label += f" {rate * 100:.0f}%"
    lines.append((tax_label, m(tax)))
    if tip is not None:
        lines.append(("TIP", m(tip)))
    total_label = rng.choice(loc.total)
    lines.append((total_label, m(total, force=loc.currency not in total_label)))
    lines.append((payment, m(total)))
    lines.append(("", ""))
    lines.append((rng.choice(loc.thanks), ""))

    truth: dict[str, object] = {
        "merchant": merchant,
        "address": f"{address}, {city}",
        "phone": phone,
        "date": when.date().isoformat(),
        "time": clock,
        "currency": loc.currency,  # printed, or implied by the merchant's country
        "country": loc.country,
        "items": items,
        "subtotal": f"{subtotal:.2f}",
        "tax": f"{tax:.2f}",
        "tip": f"{tip:.2f}" if tip is not None else None,
        "total": f"{total:.2f}",
        "payment_method": payment.lower(),
    }
    # the text for CER: separator rules are decoration that OCR engines rightly drop, so they are left out
    printed = (" ".join(p for p in line if p).strip() for line in lines)
    truth["text"] = "\n".join(t for t in printed if any(c.isalnum() for c in t))
    return SynthReceipt(
        truth=truth, lines=tuple(lines), font=rng.choice(fonts), centred_header=rng.random() < 0.6
    )


def render(receipt: SynthReceipt, *, width: int = 520, font_size: int = 22) -> Image.Image:
    """Draw the receipt flat on white paper (a clean scan).

    Raises:
        FontMissingError: the receipt's font is not installed (never drawn in another font).
    """
    font = load_font(receipt.font, font_size)
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


def degrade(image: Image.Image, rng: np.random.Generator, *, angle: float | None = None) -> Image.Image:
    """Photograph a flat receipt: table around it, rotation, perspective, uneven light, blur, JPEG artefacts.

    Args:
        angle: the paper's rotation in degrees (counter-clockwise); ``None``: a small random tilt (within 8).
    """
    import cv2

    paper = np.asarray(image.convert("RGB"))
    h, w = paper.shape[:2]
    theta = np.deg2rad(rng.uniform(-8, 8) if angle is None else angle)
    # the canvas holds the paper at any angle: its diagonal plus a margin of table
    diag = float(np.hypot(w, h))
    if angle is None:
        pad_x, pad_y = int(w * rng.uniform(0.25, 0.5)), int(h * rng.uniform(0.12, 0.25))
        canvas_w, canvas_h = w + 2 * pad_x, h + 2 * pad_y
    else:
        extent_w = abs(w * np.cos(theta)) + abs(h * np.sin(theta))
        extent_h = abs(w * np.sin(theta)) + abs(h * np.cos(theta))
        canvas_w, canvas_h = int(extent_w + 0.25 * diag), int(extent_h + 0.12 * diag)
    cx, cy = canvas_w / 2, canvas_h / 2
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32) - [w / 2, h / 2]
    # image y points down, so this matrix turns the paper counter-clockwise on screen for a positive angle
    rot = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]], dtype=np.float32)
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


def rotation_angle(rng: np.random.Generator) -> float:
    """A photo's rotation for the ``rotated`` condition: sideways, upside down, or any tilt beyond 15 degrees."""
    base = float(rng.choice([90.0, 180.0, 270.0, 0.0]))
    tilt = rng.uniform(15, 40) * rng.choice([-1, 1]) if base == 0 else rng.uniform(-10, 10)
    return base + float(tilt)


def write_receipts(
    folder: str | Path, n: int, *, seed: int = 0, degraded: bool = False, rotated: bool = False
) -> list[Path]:
    """Write ``n`` receipts as ``receipt_###.jpg`` (``.png`` when clean) + ``receipt_###.json``; return images.

    Args:
        degraded: photograph each receipt on a table (see :func:`degrade`).
        rotated: and turn it by any angle (implies ``degraded``): sideways, upside down, tilted beyond 15°.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    np_rng = np.random.default_rng(seed)
    paths = []
    for index in range(n):
        receipt = make_receipt(rng)
        image = render(receipt, font_size=rng.choice((20, 22, 24)))
        stem = folder / f"receipt_{index:03d}"
        if degraded or rotated:
            path = stem.with_suffix(".jpg")
            angle = rotation_angle(np_rng) if rotated else None
            degrade(image, np_rng, angle=angle).save(path, quality=92)
        else:
            path = stem.with_suffix(".png")
            image.save(path)
        stem.with_suffix(".json").write_text(json.dumps(receipt.truth, indent=2, ensure_ascii=False) + "\n")
        paths.append(path)
    return paths
