"""The countries generated receipts follow (:mod:`roomscan.receipts.synth`): currency and how it is printed, date
formats and month names, decimal comma, cities, phone shapes, summary keywords, reference lines."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LOCALES", "Locale"]


@dataclass(frozen=True)
class Locale:
    """One country's receipt conventions (the generator's side; the reader infers them from the receipt)."""

    country: str
    currency: str
    money_formats: tuple[
        str, ...
    ]  # "{v}" the number, "{s}" the symbol, "{c}" the ISO code; "{v}" alone: bare
    decimal_comma: bool
    date_formats: tuple[str, ...]  # strftime; "%b" is replaced by ``months``
    months: tuple[str, ...]
    cities: tuple[str, ...]
    phones: tuple[str, ...]  # "#" is a random digit
    subtotal: tuple[str, ...]
    tax: tuple[str, ...]
    total: tuple[str, ...]
    header_extras: tuple[str, ...]  # "#" is a random digit, "{name}" a first name
    thanks: tuple[str, ...]


_EN_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
LOCALES = (
    Locale(
        "US",
        "USD",
        ("${v}", "$ {v}", "{v}", "USD {v}"),
        False,
        ("%m/%d/%Y", "%m/%d/%y", "%b %d, %Y", "%m-%d-%Y", "%Y-%m-%d"),
        _EN_MONTHS,
        ("Springfield, IL 62701", "Portland, OR 97205", "Austin, TX 78701", "Denver, CO 80202"),
        ("(###) ###-####", "###-###-####", "+1 ### ### ####"),
        ("SUBTOTAL", "Sub Total", "SUB-TOTAL"),
        ("TAX", "SALES TAX", "Tax"),
        ("TOTAL", "Total", "AMOUNT DUE"),
        (
            "Receipt #{n}",
            "Order #{n}",
            "Cashier: {name}",
            "Server: {name}",
            "Table {t}",
            "Check #{n}",
            "Trans {n} Reg 2",
        ),
        ("THANK YOU!", "Please come again", "Thank you for shopping"),
    ),
    Locale(
        "GB",
        "GBP",
        ("£{v}", "{v}", "GBP {v}"),
        False,
        ("%d/%m/%Y", "%d %b %Y", "%d/%m/%y", "%d-%b-%Y"),
        _EN_MONTHS,
        ("London SW1A 1AA", "Manchester M1 1AE", "Leeds LS1 4DY", "Bristol BS1 5TR"),
        ("020 #### ####", "+44 20 #### ####", "0161 ### ####"),
        ("SUBTOTAL", "Sub-total"),
        ("VAT", "VAT 20%"),
        ("TOTAL", "BALANCE DUE", "Total to pay"),
        ("Receipt No: {n}", "Invoice {n}", "Served by: {name}", "Till 3  Trans {n}", "Table {t}"),
        ("Thank you", "VAT Reg No. GB 123 4567 89"),
    ),
    Locale(
        "DE",
        "EUR",
        ("{v} €", "{v}", "EUR {v}", "{v} EUR"),
        True,
        ("%d.%m.%Y", "%d.%m.%y", "%d.%m.%Y"),
        ("Jan", "Feb", "Mär", "Apr", "Mai", "Jun", "Jul", "Aug", "Sep", "Okt", "Nov", "Dez"),
        ("10115 Berlin", "80331 München", "20095 Hamburg", "50667 Köln"),
        ("Tel. 030 #######", "+49 30 #######", "Tel: 089 ######"),
        ("ZWISCHENSUMME", "Zwischensumme"),
        ("MWST", "MwSt", "USt"),
        ("SUMME", "GESAMT", "Summe EUR", "TOTAL"),
        ("Bon-Nr. {n}", "Beleg {n}", "Kasse 2  Bon {n}", "Es bediente Sie: {name}", "Tisch {t}"),
        ("Vielen Dank für Ihren Einkauf", "Danke!"),
    ),
    Locale(
        "FR",
        "EUR",
        ("{v} €", "{v}", "{v} EUR", "EUR {v}"),
        True,
        ("%d/%m/%Y", "%d/%m/%y", "%d %b %Y"),
        ("janv", "févr", "mars", "avr", "mai", "juin", "juil", "août", "sept", "oct", "nov", "déc"),
        ("75002 Paris", "69002 Lyon", "13001 Marseille", "33000 Bordeaux"),
        ("Tél. 01 ## ## ## ##", "+33 1 ## ## ## ##", "04 ## ## ## ##"),
        ("SOUS-TOTAL", "Sous total"),
        ("TVA", "TVA 20%"),
        ("TOTAL TTC", "TOTAL", "NET A PAYER"),
        ("Ticket N° {n}", "Facture {n}", "Caissier: {name}", "Table {t}", "Commande {n}"),
        ("Merci de votre visite", "A bientôt"),
    ),
    Locale(
        "IT",
        "EUR",
        ("{v} €", "€ {v}", "{v}", "EUR {v}"),
        True,
        ("%d/%m/%Y", "%d-%m-%Y", "%d/%m/%y"),
        ("gen", "feb", "mar", "apr", "mag", "giu", "lug", "ago", "set", "ott", "nov", "dic"),
        ("20121 Milano", "00184 Roma", "50122 Firenze", "10121 Torino"),
        ("Tel. 02 #######", "+39 06 #######"),
        ("SUBTOTALE", "Subtotale"),
        ("IVA", "IVA 22%"),
        ("TOTALE", "TOTALE EURO", "TOTALE COMPLESSIVO"),
        ("Scontrino n. {n}", "Documento {n}", "Cassiere: {name}", "Tavolo {t}", "Cassa 1"),
        ("Grazie e arrivederci",),
    ),
    Locale(
        "CH",
        "CHF",
        ("CHF {v}", "{v}", "{v} CHF", "Fr. {v}"),
        False,
        ("%d.%m.%Y", "%d.%m.%y"),
        ("Jan", "Feb", "Mär", "Apr", "Mai", "Jun", "Jul", "Aug", "Sep", "Okt", "Nov", "Dez"),
        ("8001 Zürich", "3011 Bern", "4051 Basel", "1204 Genève"),
        ("+41 44 ### ## ##", "Tel. 044 ### ## ##"),
        ("Zwischensumme", "SUBTOTAL"),
        ("MWST", "MWST 8.1%"),
        ("TOTAL", "TOTAL CHF", "Total"),
        ("Beleg-Nr. {n}", "Kassier: {name}", "Tisch {t}", "Bestellung {n}"),
        ("Merci vielmal",),
    ),
    Locale(
        "ES",
        "EUR",
        ("{v} €", "{v}", "{v} EUR"),
        True,
        ("%d/%m/%Y", "%d-%m-%Y", "%d/%m/%y"),
        ("ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sep", "oct", "nov", "dic"),
        ("28013 Madrid", "08002 Barcelona", "41001 Sevilla", "46002 Valencia"),
        ("Tel. 91 ### ## ##", "+34 93 ### ## ##"),
        ("SUBTOTAL", "Base imponible"),
        ("IVA", "IVA 21%"),
        ("TOTAL", "TOTAL A PAGAR", "IMPORTE"),
        ("Factura simplificada {n}", "Ticket {n}", "Le atendió: {name}", "Mesa {t}", "Pedido {n}"),
        ("Gracias por su visita",),
    ),
)
