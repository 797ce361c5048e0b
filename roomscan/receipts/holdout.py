"""The held-out evaluation split: hand-written receipts the field rules were never tuned on.

Twelve receipts written by hand from real-world layouts (Austria, the Netherlands, Ireland, Canada, Australia,
the US, France, Germany, Switzerland, Italy, Spain, the UK), with merchants, layouts, keywords and fonts
(:data:`~roomscan.receipts.fonts.HELD_OUT_FONTS`) that :mod:`roomscan.receipts.synth` never produces, drawn by
their own renderer. Several print things the rules do not handle yet (tax included in the total, payment words
like ``PIN`` or ``TWINT``): the split measures how the reader does on receipts it has not seen, so they stay.
Report it next to the tuned split; never change the rules by looking at its misses.

Example:
    >>> write_holdout("eval/held-out-clean")                       # doctest: +SKIP
    >>> write_holdout("eval/held-out-rotated", condition="rotated")  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from roomscan.receipts.fonts import HELD_OUT_FONTS, load_font
from roomscan.receipts.synth import degrade, rotation_angle

__all__ = ["CONDITIONS", "TEMPLATES", "render_template", "write_holdout"]

CONDITIONS = ("clean", "degraded", "rotated")


def _items(*amounts: str) -> list[dict[str, str]]:
    return [{"amount": a} for a in amounts]


# (text, truth): "left | right" puts right flush right; a line starting with "^" is centred.
TEMPLATES: tuple[tuple[str, dict[str, Any]], ...] = (
    (
        """^Café Sperl
^Gumpendorfer Str. 11
^1060 Wien
^Tel. +43 1 586 41 58
Rechnung Nr. 2231
Tisch 7   Kellner: Franz
16.07.2025 14:32
Melange | 4,90
2 x Sachertorte | 13,80
Apfelstrudel | 6,20
Summe EUR | 24,90
inkl. 10% MwSt | 2,26
Bar | 24,90""",
        {"merchant": "Café Sperl", "date": "2025-07-16", "time": "14:32", "currency": "EUR", "total": "24.90",
         "tax": "2.26", "items": _items("4.90", "13.80", "6.20"), "payment_method": "cash"},
    ),
    (
        """^ALBERT HEIJN
^Damstraat 12
^1012 JM Amsterdam
BANANEN | 1,89
HALFVOLLE MELK | 1,15
JONGE KAAS | 4,99
TOTAAL | 8,03
BTW 9% | 0,66
PINNEN | 8,03
16-07-2025 09:14   KASSA 4""",
        {"merchant": "ALBERT HEIJN", "date": "2025-07-16", "time": "09:14", "currency": "EUR", "total": "8.03",
         "items": _items("1.89", "1.15", "4.99")},
    ),
    (
        """^THE LONG HALL
^51 South Great George's St
^Dublin 2
^Ph: 01 475 1590
Table 12   Covers 4
Server: Aoife
03/05/2025 21:47
2 Guinness | €13.00
Fish & Chips | €16.50
Total | €29.50
VISA | €29.50""",
        {"merchant": "THE LONG HALL", "date": "2025-05-03", "time": "21:47", "currency": "EUR", "total": "29.50",
         "items": _items("13.00", "16.50"), "payment_method": "visa", "tip": None},
    ),
    (
        """^MAPLE LEAF DINER
^220 Queen St W
^Toronto, ON M5V 1Z6
^(416) 555-0199
Order #4471   Cashier: Jen
Date: 2025-03-04  Time: 12:05
Pancake Stack | $11.50
Bacon Side | $4.25
Coffee | $2.75
Subtotal | $18.50
HST 13% | $2.41
Total | $20.91
DEBIT | $20.91""",
        {"merchant": "MAPLE LEAF DINER", "date": "2025-03-04", "time": "12:05", "currency": "CAD",
         "subtotal": "18.50", "tax": "2.41", "total": "20.91", "items": _items("11.50", "4.25", "2.75"),
         "payment_method": "debit"},
    ),
    (
        """^HARBOUR BITES
^Shop 4, 1 Macquarie St
^Sydney NSW 2000
^ABN 12 345 678 901
Tax Invoice 000982
04/03/2025 08:31 AM
Flat White | $5.20
Banana Bread | $6.50
Juice | $4.25
Total (incl GST) | $15.95
GST | $1.45
EFTPOS | $15.95""",
        {"merchant": "HARBOUR BITES", "date": "2025-03-04", "time": "08:31", "currency": "AUD", "total": "15.95",
         "tax": "1.45", "items": _items("5.20", "6.50", "4.25")},
    ),
    (
        """^JOE'S DELI & GROCERY
^1452 2nd Ave
^New York, NY 10075
^Tel 212-555-0147
Chk 2231   Tbl 3
Guests: 2
Jul 16, 2025   7:45 PM
Bagel w/ Lox ........ 12.95
Coffee Lg ........... 3.25
SUBTOTAL | 16.20
Sales Tax 8.875% | 1.44
Tip | 3.00
TOTAL | $20.64
MASTERCARD ****1234 | $20.64""",
        {"merchant": "JOE'S DELI & GROCERY", "date": "2025-07-16", "time": "19:45", "currency": "USD",
         "subtotal": "16.20", "tax": "1.44", "tip": "3.00", "total": "20.64", "items": _items("12.95", "3.25"),
         "payment_method": "mastercard"},
    ),
    (
        """^BOULANGERIE DU MARCHE
^18 rue Cler
^75007 Paris
^Tél: 01 45 55 12 34
Ticket: 5567   Caisse 1
Vendeur: Paul
mer. 16 juil. 2025 08:12
2 x Baguette tradition | 2,60 €
Croissant beurre | 1,30 €
Eclair café | 3,50 €
Total TTC | 7,40 €
dont TVA 5,5% | 0,39 €
CB | 7,40 €""",
        {"merchant": "BOULANGERIE DU MARCHE", "date": "2025-07-16", "time": "08:12", "currency": "EUR",
         "total": "7.40", "tax": "0.39", "items": _items("2.60", "1.30", "3.50")},
    ),
    (
        """^Biergarten am See
^Seestraße 3
^80802 München
^USt-IdNr. DE811234567
Bon 0045   Tisch 14
Bedienung: Sepp
Datum: 05.04.25   Zeit: 19:02
2 Maß Helles | 21,80
Brezn | 4,50
Obatzda | 8,90
Summe | 35,20
MwSt 19% | 5,62
Bar | 35,20""",
        {"merchant": "Biergarten am See", "date": "2025-04-05", "time": "19:02", "currency": "EUR",
         "total": "35.20", "tax": "5.62", "items": _items("21.80", "4.50", "8.90"), "payment_method": "cash"},
    ),
    (
        """^Bäckerei Kleiner
^Bahnhofstrasse 40
^8001 Zürich
^MWST-Nr. CHE-123.456.789
Quittung 2025-1881
03.04.25 10:15
Gipfeli | 2.40
Kaffee | 4.80
Birchermüesli | 7.50
Total CHF | 14.70
MWST 2.6% | 0.37
TWINT | 14.70""",
        {"merchant": "Bäckerei Kleiner", "date": "2025-04-03", "time": "10:15", "currency": "CHF", "total": "14.70",
         "tax": "0.37", "items": _items("2.40", "4.80", "7.50")},
    ),
    (
        """^TRATTORIA DA ENZO
^Via dei Vascellari 29
^00153 Roma
^P.IVA 01234567890
DOCUMENTO COMMERCIALE
Scontrino n. 0123
Tavolo 6   Coperti 2
2 x Coperto | 5,00
Cacio e pepe | 12,00
Carciofi alla romana | 8,00
Vino della casa | 7,00
TOTALE COMPLESSIVO | 32,00
di cui IVA | 2,91
Pagamento contante | 32,00
16-07-2025 13:40""",
        {"merchant": "TRATTORIA DA ENZO", "date": "2025-07-16", "time": "13:40", "currency": "EUR",
         "total": "32.00", "tax": "2.91", "items": _items("5.00", "12.00", "8.00", "7.00"),
         "payment_method": "cash"},
    ),
    (
        """^CAFETERÍA SOL
^Calle Mayor 5
^28013 Madrid
^NIF B12345678
Factura simplificada: T-2025-774
Mesa 3   Camarero: Luis
12/08/2025 18:20
2 Café con leche | 3,60
Tostada con tomate | 2,80
Zumo naranja | 3,20
Base imponible | 8,73
IVA 10% | 0,87
TOTAL | 9,60
Efectivo | 10,00
Cambio | 0,40""",
        {"merchant": "CAFETERÍA SOL", "date": "2025-08-12", "time": "18:20", "currency": "EUR",
         "subtotal": "8.73", "tax": "0.87", "total": "9.60", "items": _items("3.60", "2.80", "3.20"),
         "payment_method": "cash"},
    ),
    (
        """^HIGHGATE ESPRESSO
^12 Highgate High St
^London N6 5JL
^VAT No: GB 987 6543 21
Receipt 74632
Cashier: Anna
14 Jun 2025 11:47
Flat White | £3.40
2 x Almond Croissant | £6.90
Total | £10.30
VAT @ 20% | £1.72
Contactless VISA | £10.30""",
        {"merchant": "HIGHGATE ESPRESSO", "date": "2025-06-14", "time": "11:47", "currency": "GBP",
         "total": "10.30", "tax": "1.72", "items": _items("3.40", "6.90"), "payment_method": "visa"},
    ),
)  # fmt: skip


def render_template(
    text: str, font: str, *, width: int = 540, size: int = 22, spacing: float = 1.4
) -> Image.Image:
    """Draw a template: ``^`` lines centred, ``left | right`` with right flush right, slightly grey ink."""
    face = load_font(font, size)
    rows = text.splitlines()
    line_h, margin = int(size * spacing), 24
    image = Image.new("L", (width, margin * 2 + line_h * len(rows)), 250)
    draw = ImageDraw.Draw(image)
    for row, line in enumerate(rows):
        y = margin + row * line_h
        if line.startswith("^"):
            draw.text(((width - draw.textlength(line[1:], font=face)) / 2, y), line[1:], fill=40, font=face)
            continue
        left, _, right = line.partition(" | ")
        draw.text((margin, y), left, fill=40, font=face)
        if right:
            draw.text((width - margin - draw.textlength(right, font=face), y), right, fill=40, font=face)
    return image.convert("RGB")


def _plain(text: str) -> str:
    return "\n".join(line.lstrip("^").replace(" | ", " ") for line in text.splitlines())


def write_holdout(folder: str | Path, *, condition: str = "clean", fonts_per_template: int = 3) -> list[Path]:
    """Write every template in ``fonts_per_template`` held-out fonts as images + ground-truth JSON; return images.

    Args:
        condition: ``clean`` (flat scans), ``degraded`` (photographed on a table) or ``rotated`` (and turned by
            any angle). Fonts, sizes and damage are fixed per template, so the split is the same on every run.
    """
    if condition not in CONDITIONS:
        raise ValueError(f"condition must be one of {', '.join(CONDITIONS)}, got {condition!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20250716 + CONDITIONS.index(condition))
    paths = []
    for t, (text, truth) in enumerate(TEMPLATES):
        for k in range(fonts_per_template):
            font = HELD_OUT_FONTS[(t + 2 * k) % len(HELD_OUT_FONTS)]
            image = render_template(
                text, font, width=int(rng.integers(480, 620)), size=int(rng.integers(19, 26)),
                spacing=float(rng.uniform(1.3, 1.6)),
            )  # fmt: skip
            stem = folder / f"held_out_{t:02d}_{k}"
            if condition == "clean":
                path = stem.with_suffix(".png")
                image.save(path)
            else:
                path = stem.with_suffix(".jpg")
                angle = rotation_angle(rng) if condition == "rotated" else None
                degrade(image, rng, angle=angle).save(path, quality=92)
            record = {**truth, "text": _plain(text), "font": font}
            stem.with_suffix(".json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
            paths.append(path)
    return paths
