"""Regenerate the binary files of the sample corpus in examples/docs.

The sample corpus describes a fictional company, Nimbus Home, and its smart thermostat,
the Nimbus T3. The text files of the corpus (FAQ, release notes, support policy, sensor
data sheet) are written by hand and committed as they are. The binary files are built
here from text kept in this script, so they can be reproduced and reviewed as text:

* nimbus_t3_manual.pdf      the installation and user manual, a multi-page PDF written
                            by a small PDF writer below (Helvetica, no extra dependency)
* warranty_and_returns.docx the warranty and returns policy, written with python-docx
* logo.png                  a tiny valid PNG: a file type the Q&A loader does not read,
                            so a run shows how unsupported files are skipped

The generated files are committed too, so a clean checkout works without running this.

    python examples/make_corpus.py            # rewrite the files in examples/docs
    python examples/make_corpus.py --out DIR  # write them somewhere else
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

DOCS_DIR = Path(__file__).resolve().parent / "docs"

MANUAL_NAME = "nimbus_t3_manual.pdf"
POLICY_NAME = "warranty_and_returns.docx"
LOGO_NAME = "logo.png"

# A fixed timestamp for every date stored inside the generated files.
FIXED_TIME = dt.datetime(2024, 9, 2, 9, 0, 0, tzinfo=dt.UTC)

# --------------------------------------------------------------------------------------
# Text of the product manual (PDF).
#
# Markup, one block per paragraph (blocks are separated by blank lines):
#   "# text"    document title          "## text"  section heading
#   "- text"    one table-like line
# Any other block is a paragraph of prose, re-flowed to the page width; pages break
# where the text runs out of room.
# --------------------------------------------------------------------------------------

MANUAL_TITLE = "Nimbus T3 Smart Thermostat - Installation and User Manual"
MANUAL_FOOTER = "Nimbus Home  |  Nimbus T3 Installation and User Manual  |  NH-T3-UM rev. C"

MANUAL_TEXT = """
# Nimbus T3 Smart Thermostat

# Installation and User Manual

Thank you for choosing the Nimbus T3. This manual explains how to install the thermostat \
on your wall, wire it to your heating and cooling equipment, connect it to your home \
Wi-Fi network, build a weekly schedule, and solve the most common problems. Please read \
the whole installation chapter before you remove your old thermostat. A typical \
installation takes between 30 and 45 minutes and needs only a small flat screwdriver, a \
pencil and a drill with a 5 mm bit.

## What is in the box

- Nimbus T3 display unit
- Wall base plate with push-in wire terminals and a built-in bubble level
- Trim plate, 150 x 150 mm, to hide marks left by a larger old thermostat
- Two wall screws and two plastic wall anchors
- A sheet of wire labels
- This manual

## Safety information

The Nimbus T3 is a low-voltage thermostat designed for 24 VAC control circuits. Never \
connect it to a line-voltage system of 120 V or 240 V, such as electric baseboard \
heaters or wall convectors; doing so destroys the thermostat and can start a fire. If \
the wires behind your old thermostat are thick, are joined with twist-on connectors, or \
are marked 120 V or 240 V, stop and consult a qualified heating technician.

Always switch off the power to your furnace, boiler, air handler or heat pump at the \
circuit breaker before you touch any wire. Turning the old thermostat to Off is not \
enough, because the control transformer stays live.

## Installing the base plate

Step 1. Turn off the power at the breaker. To confirm that it is off, raise the set \
temperature on your old thermostat by a few degrees: the heating system must not start.

Step 2. Remove the cover of the old thermostat and take a photo of the wiring before you \
disconnect anything. The photo is the easiest way to answer questions later.

Step 3. Stick a supplied label on each wire. Choose the label that matches the letter of \
the terminal the wire was connected to, not the colour of the wire: installers do not \
always follow the colour code.

Step 4. Disconnect the wires and remove the old base. Wrap the bundle around a pencil so \
it cannot fall back into the wall.

Step 5. Pull the wires through the opening in the centre of the T3 base plate. Hold the \
plate against the wall, centre the bubble in the level, and mark the two screw holes. \
Drill the holes, push in the anchors and fasten the plate with the screws.

Choose the location with care. Mount the thermostat on an inside wall about 1.5 metres \
above the floor, away from direct sunlight, lamps, televisions, doorways and supply \
vents. Heat and draughts from these sources make the thermostat read a temperature that \
does not represent the room.

## Wiring the thermostat

The base plate has push-in terminals labelled with the standard letters used in the \
heating and cooling trade. Connect each labelled wire to the terminal with the same \
letter. The table below describes every terminal.

- R or Rh: 24 VAC power from the heating transformer
- Rc: 24 VAC power from the cooling transformer, in systems with two transformers
- C: common wire that completes the 24 VAC circuit; required by the Nimbus T3
- W1 and W2: first and second stage of heating
- Y1 and Y2: first and second stage of cooling or compressor
- G: indoor fan or blower
- O/B: reversing valve of a heat pump
- ACC+ and ACC-: dry contacts for a humidifier, dehumidifier or ventilator

To connect a wire, strip 6 mm of insulation from its end if the copper is damaged, press \
the white tab above the terminal, push the wire all the way in and release the tab. Tug \
gently on the wire to check that it is held. The terminals accept solid copper wire from \
18 to 22 AWG. Do not use stranded wire without a crimped ferrule.

The Nimbus T3 needs a common wire, called the C wire. The thermostat does not borrow \
power through the heating wire, as some thermostats do, because that practice can make \
certain furnaces switch on and off by themselves. If your old thermostat had nothing \
connected to C, look in the wall for a spare wire folded back into the bundle. Connect it \
to C on the thermostat and to the C or COM terminal on the control board of the furnace \
or air handler. If there is no spare wire, install the Nimbus C-Wire Adapter, which is \
sold separately and fits next to the control board.

The R and Rc terminals are joined by an internal jumper when only one of them is used. If \
your system has separate Rh and Rc wires, insert both: the jumper opens by itself when it \
detects the second wire, so you never need to cut or move a jumper by hand.

Heat pumps use the O/B terminal to switch the reversing valve. During setup the \
thermostat asks whether the valve is energised in cooling, marked O, or energised in \
heating, marked B. Most heat pumps use O. If you are unsure, choose O; you can change the \
setting later under Menu, Settings, Equipment.

When every wire is connected, fold the surplus wire back into the wall, press the \
display onto the base plate until it clicks, and switch the breaker back on. The Nimbus \
logo appears, and after about 20 seconds the thermostat shows the language screen.

The thermostat then runs an automatic wiring check. It measures the voltage on each \
connected terminal and shows a green tick next to each terminal that is wired correctly. \
A red cross means that the terminal is connected but carries no voltage; switch the \
power off again and check that wire at both ends.

## Connecting to Wi-Fi

The Nimbus T3 is set up with the Nimbus Home app for phones and tablets. Install the app, \
create an account or sign in, tap Add device and choose Thermostat.

On the thermostat, open Menu, Settings, Network and choose Join with app. The thermostat \
opens a temporary setup hotspot named NimbusT3- followed by the last four characters of \
its serial number. The app joins this hotspot, then asks you to choose your home network \
and type its password. The setup hotspot closes after 10 minutes; if it closes before you \
finish, choose Join with app again.

The Nimbus T3 connects only to 2.4 GHz Wi-Fi networks, and 5 GHz networks do not appear \
in the list during setup. If your router broadcasts both bands under a single network \
name, the thermostat chooses the 2.4 GHz band by itself. The thermostat supports \
WPA2-Personal and WPA3-Personal security. Networks that require a sign-in web page, such \
as those in hotels and student residences, are not supported.

As soon as it is online, the thermostat checks for new firmware and may restart once to \
install it. Do not switch off the breaker while the update bar is shown.

## Building a schedule

The thermostat follows a weekly schedule made of set points. A set point is a time of day \
and a target temperature for heating, for cooling, or for both. The thermostat holds the \
target until the next set point begins. Each day can hold up to six set points, which is \
enough for a wake, leave, return and sleep pattern with room to spare.

You can build the schedule on the thermostat under Menu, Schedule, Edit, but the app is \
faster: drag the set points along the day, then use Copy day to repeat a day on other \
days of the week. The schedule is stored in the thermostat itself, so it keeps running \
when the app is closed.

Heating set points can be chosen between 5 and 32 °C, and cooling set points between 10 \
and 35 °C. In Auto mode, where the thermostat both heats and cools, the heating and \
cooling targets must be at least 2 °C apart. This gap, called the deadband, stops the \
system from switching between heating and cooling many times a day.

Turning the dial changes the target only until the next set point; this is a temporary \
hold and the display shows the time at which it ends. To keep a temperature until you \
cancel it, press and hold the dial for three seconds and choose Permanent hold. Select \
Resume schedule to return to the normal program.

## Troubleshooting

The display stays blank. Check that the breaker is on and that the door of the furnace or \
air handler is closed. Most equipment has a safety switch that cuts the power when the \
blower door is open.

Error code E1 means that the built-in temperature sensor reports a value outside its \
range. Restart the thermostat from Menu, Settings, Restart. If the code comes back, \
contact Nimbus Home customer care.

Error code E4 means that the thermostat has had no Wi-Fi connection for more than 30 \
minutes. The schedule keeps running without the connection. Restart your router, and \
check that the network name and password have not changed.

Error code E7 means that the thermostat detects no 24 VAC power on the C terminal. Check \
that the C wire is pushed fully into its terminal and that it is connected at the \
control board of the furnace or air handler as well.

Error code E9 means that the heat pump heats when cooling is requested, or cools when \
heating is requested. Change the O/B setting under Menu, Settings, Equipment.

The system turns on and off too often. Open Menu, Settings, Equipment, Cycles per hour \
and lower the value. The default is 4 cycles per hour for a gas furnace and 3 cycles per \
hour for a heat pump.

The temperature shown differs from another thermometer. Make sure that the thermostat is \
out of the sun and away from vents. You can correct a steady difference with the \
temperature offset under Menu, Settings, Sensors, which accepts values up to 3 °C in \
either direction.

To return the thermostat to its factory settings, open Menu, Settings, Reset and choose \
Factory reset. This erases the Wi-Fi settings, the schedule and the equipment settings.

## Technical specifications

- Model number: NH-T3
- Display: 3.5-inch colour touchscreen, 480 x 320 pixels
- Power supply: 24 VAC, 50/60 Hz, 3 W maximum; C wire required
- Compatible equipment: gas, oil and electric furnaces with 24 V controls, boilers, \
central air conditioning, heat pumps
- Maximum stages: 2 heating and 2 cooling, or 2 compressor and 1 auxiliary heat
- Built-in sensors: temperature, humidity, ambient light, occupancy
- Temperature accuracy: ±0.5 °C
- Humidity accuracy: ±3 % relative humidity
- Wireless: Wi-Fi 802.11 b/g/n at 2.4 GHz; Bluetooth Low Energy 5.0
- Operating range: 0 to 40 °C, 5 to 90 % relative humidity, non-condensing
- Dimensions: 88 x 88 x 24 mm
- Weight: 142 g
"""

# --------------------------------------------------------------------------------------
# Text of the warranty and returns policy (DOCX).
# Same markup as the manual: "# " title, "## " heading, "- " bullet, other blocks are
# paragraphs.
# --------------------------------------------------------------------------------------

POLICY_TITLE = "Nimbus Home Warranty and Returns Policy"

POLICY_TEXT = """
# Nimbus Home Warranty and Returns Policy

This policy applies to Nimbus Home products bought new or certified refurbished from \
Nimbus Home or from an authorised reseller. It was last updated on 2 September 2024 and \
replaces all earlier versions. Nothing in this policy limits the rights you have under \
consumer law in your country or state.

## 1. Limited hardware warranty

Nimbus Home warrants that its products are free from defects in materials and \
workmanship under normal use. The Nimbus T3 thermostat is covered by a limited hardware \
warranty of three years from the date of original purchase. Accessories, including the \
Nimbus RS1 room sensor, the C-Wire Adapter and trim plates, are covered for one year from \
the date of purchase. Certified refurbished products carry a warranty of 12 months.

If a covered product fails during the warranty period, Nimbus Home will, at its option, \
repair it, replace it with a new or refurbished unit of equal function, or refund the \
purchase price. A replacement unit is covered for the rest of the original warranty \
period or for 90 days, whichever is longer.

## 2. What the warranty does not cover

The warranty does not cover:

- damage caused by installation on a line-voltage system or by incorrect wiring;
- damage from accidents, liquid, fire, lightning or power surges;
- coin cell batteries and other consumable parts;
- cosmetic wear such as scratches and dents that do not affect how the product works;
- products that have been opened, modified or repaired by anyone other than Nimbus Home;
- the cost of labour for removing or reinstalling a product.

## 3. Making a warranty claim

To make a claim, open the Nimbus Home app, choose the product and tap Get help, or fill \
in the claim form on our website. You will need the serial number, which is printed on \
the back of the display unit, and your proof of purchase.

If our troubleshooting does not solve the problem, we issue a Return Merchandise \
Authorisation (RMA) number. Ship the product to the address on the RMA within 14 days of \
receiving the number. Nimbus Home pays the shipping cost in both directions for an \
approved warranty claim. We ship a replacement within 5 business days of receiving the \
faulty product, or straight away with advance replacement if you provide a card deposit.

## 4. Returns and refunds

You may return any product bought directly from Nimbus Home within 45 days of delivery, \
for any reason. Start a return from your order page to receive a prepaid return label. \
Products bought from a reseller must be returned to that reseller under its own policy.

Unopened products are refunded in full. An opened product returned in working condition \
with all its parts is charged a restocking fee of 15 percent of the purchase price. No \
restocking fee applies when the product is defective or when we sent the wrong item.

Refunds go back to the original payment method within 10 business days after the \
returned product reaches our warehouse. Original shipping charges are refunded only when \
the return is due to our error.

## 5. Questions about this policy

For questions about the warranty or a return, contact Nimbus Home customer care through \
the app or the support pages of our website. Please have your order number ready.
"""


# --------------------------------------------------------------------------------------
# A very small parser for the markup above.
# --------------------------------------------------------------------------------------


def parse_blocks(text: str) -> Iterator[tuple[str, str]]:
    """Yield (kind, text) pairs: kind is title, heading, item or para."""
    for raw in text.strip().split("\n\n"):
        block = raw.strip()
        if not block:
            continue
        if block.startswith("# "):
            yield "title", block[2:].strip()
        elif block.startswith("## "):
            yield "heading", block[3:].strip()
        elif block.startswith("- "):
            for line in block.splitlines():
                yield "item", line.removeprefix("- ").strip()
        else:
            yield "para", " ".join(block.split())


# --------------------------------------------------------------------------------------
# A minimal PDF writer: Type 1 base fonts (Helvetica, Helvetica-Bold), WinAnsi encoding,
# uncompressed content streams, one text line per Tm/Tj, and a classic xref table.
# --------------------------------------------------------------------------------------

# Advance widths (1/1000 em) of the printable ASCII characters 32..126, from the
# standard Adobe font metrics of Helvetica and Helvetica-Bold.
_HELVETICA = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556,
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556,
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,
]  # fmt: skip
_HELVETICA_BOLD = [
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611,
    975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778,
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556,
    333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611,
    611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584,
]  # fmt: skip
# The few non-ASCII characters the manual uses (same width in both faces).
_EXTRA_WIDTHS = {"°": 400, "±": 584}

FONTS = {"F1": ("Helvetica", _HELVETICA), "F2": ("Helvetica-Bold", _HELVETICA_BOLD)}

PAGE_WIDTH, PAGE_HEIGHT = 612, 792  # US Letter, in points
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 72, 72, 72, 72
TEXT_WIDTH = PAGE_WIDTH - MARGIN_LEFT - MARGIN_RIGHT

# kind -> (font, size, line height, space before the block)
STYLES = {
    "title": ("F2", 20.0, 26.0, 0.0),
    "subtitle": ("F2", 14.0, 20.0, 0.0),
    "heading": ("F2", 13.0, 17.0, 12.0),
    "para": ("F1", 10.5, 14.0, 7.0),
    "item": ("F1", 10.5, 14.0, 2.0),
}
ITEM_INDENT = 14


def text_width(text: str, font: str, size: float) -> float:
    widths = FONTS[font][1]
    total = 0
    for ch in text:
        code = ord(ch)
        total += widths[code - 32] if 32 <= code <= 126 else _EXTRA_WIDTHS.get(ch, 556)
    return total * size / 1000


def wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """Greedy word wrap; a word is never split, so words stay whole in the text."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if current and text_width(candidate, font, size) > width:
            lines.append(current)
            current = word
        else:
            current = candidate
    if current:
        lines.append(current)
    return lines


def pdf_string(text: str) -> bytes:
    """A PDF literal string in WinAnsi (cp1252) bytes, with (, ) and \\ escaped."""
    raw = text.encode("cp1252")
    raw = raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    return b"(" + raw + b")"


Line = tuple[str, float, float, float, str]  # font, size, x, y, text


def layout_manual(text: str) -> list[list[Line]]:
    """Place every line of the manual on pages; returns the lines of each page."""
    pages: list[list[Line]] = [[]]
    y = PAGE_HEIGHT - MARGIN_TOP
    first_title = True
    for kind, block in parse_blocks(text):
        if kind == "title":
            style = "title" if first_title else "subtitle"
            first_title = False
        else:
            style = kind
        font, size, leading, space_before = STYLES[style]
        indent = ITEM_INDENT if kind == "item" else 0
        lines = wrap(block, font, size, TEXT_WIDTH - indent)
        # Keep a heading with at least two lines of what follows it.
        needed = leading * (len(lines) + (2 if kind == "heading" else 0))
        if pages[-1] and y - space_before - needed < MARGIN_BOTTOM:
            pages.append([])
            y = PAGE_HEIGHT - MARGIN_TOP
        elif pages[-1]:
            y -= space_before
        for i, line in enumerate(lines):
            # Continuation lines of a table-like item are indented a little further.
            x = MARGIN_LEFT + indent + (ITEM_INDENT if kind == "item" and i else 0)
            pages[-1].append((font, size, x, y - size, line))
            y -= leading
    return pages


def render_pdf(text: str, *, title: str, footer: str) -> bytes:
    pages = layout_manual(text)
    objects: list[bytes] = []  # object number n is objects[n - 1]

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled in once the page tree exists
    page_tree = add(b"")
    font_refs = {
        name: add(
            f"<< /Type /Font /Subtype /Type1 /BaseFont /{base} "
            f"/Encoding /WinAnsiEncoding >>".encode()
        )
        for name, (base, _) in FONTS.items()
    }
    info = add(
        b"<< /Title "
        + pdf_string(title)
        + b" /Author (Nimbus Home) /Creator (runq examples/make_corpus.py)"
        + f" /CreationDate (D:{FIXED_TIME:%Y%m%d%H%M%S}Z) >>".encode()
    )
    resources = " ".join(f"/{name} {ref} 0 R" for name, ref in font_refs.items())

    page_refs = []
    for number, lines in enumerate(pages, start=1):
        label = f"{footer}  |  Page {number} of {len(pages)}"
        lines = [*lines, ("F1", 8.0, MARGIN_LEFT, MARGIN_BOTTOM / 2, label)]
        ops = [b"BT"]
        for font, size, x, y, line in lines:
            ops.append(f"/{font} {size:g} Tf 1 0 0 1 {x:.2f} {y:.2f} Tm".encode())
            ops.append(pdf_string(line) + b" Tj")
        ops.append(b"ET")
        stream = b"\n".join(ops) + b"\n"
        content = add(f"<< /Length {len(stream)} >>\nstream\n".encode() + stream + b"endstream")
        page_refs.append(
            add(
                f"<< /Type /Page /Parent {page_tree} 0 R "
                f"/MediaBox [0 0 {PAGE_WIDTH} {PAGE_HEIGHT}] "
                f"/Resources << /Font << {resources} >> >> "
                f"/Contents {content} 0 R >>".encode()
            )
        )

    kids = " ".join(f"{ref} 0 R" for ref in page_refs)
    objects[page_tree - 1] = f"<< /Type /Pages /Kids [{kids}] /Count {len(page_refs)} >>".encode()
    objects[catalog - 1] = f"<< /Type /Catalog /Pages {page_tree} 0 R >>".encode()

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref_at = len(out)
    out += f"xref\n0 {len(objects) + 1}\n".encode()
    out += b"0000000000 65535 f \n"
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root {catalog} 0 R /Info {info} 0 R >>\n"
        f"startxref\n{xref_at}\n%%EOF\n"
    ).encode()
    return bytes(out)


# --------------------------------------------------------------------------------------
# DOCX, with python-docx. The package is re-zipped with fixed timestamps so that running
# the script twice gives the same bytes.
# --------------------------------------------------------------------------------------


def render_docx(text: str, *, title: str) -> bytes:
    from docx import Document  # imported here: only this builder needs it

    document = Document()
    props = document.core_properties
    props.title = title
    props.author = "Nimbus Home Customer Care"
    props.last_modified_by = "Nimbus Home Customer Care"
    props.created = FIXED_TIME.replace(tzinfo=None)
    props.modified = FIXED_TIME.replace(tzinfo=None)
    props.revision = 3
    for kind, block in parse_blocks(text):
        if kind == "title":
            document.add_heading(block, level=0)
        elif kind == "heading":
            document.add_heading(block, level=1)
        elif kind == "item":
            document.add_paragraph(block, style="List Bullet")
        elif kind == "para":
            document.add_paragraph(block)
    raw = io.BytesIO()
    document.save(raw)
    return _normalise_zip(raw.getvalue())


def _normalise_zip(data: bytes) -> bytes:
    """Rewrite a zip archive with sorted-as-found members and a fixed timestamp."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for item in src.infolist():
            info = zipfile.ZipInfo(item.filename, date_time=FIXED_TIME.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, src.read(item.filename))
    return out.getvalue()


# --------------------------------------------------------------------------------------
# PNG: a 32 x 32 logo (a light cloud on a blue square), for the "unsupported file" path.
# --------------------------------------------------------------------------------------


def render_png(size: int = 32) -> bytes:
    blue, white = (30, 94, 170), (245, 248, 252)
    # The cloud is the union of three discs and a flat base.
    discs = [(11, 18, 6), (18, 14, 8), (24, 19, 5)]
    rows = []
    for y in range(size):
        row = bytearray([0])  # filter type 0 for every scanline
        for x in range(size):
            in_cloud = any((x - cx) ** 2 + (y - cy) ** 2 <= r * r for cx, cy, r in discs)
            in_cloud = in_cloud or (11 <= x <= 24 and 18 <= y <= 24)
            row += bytes(white if in_cloud else blue)
        rows.append(bytes(row))

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )


# --------------------------------------------------------------------------------------


def build(out_dir: Path = DOCS_DIR) -> list[Path]:
    """Write the generated files into out_dir and return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = {
        MANUAL_NAME: render_pdf(MANUAL_TEXT, title=MANUAL_TITLE, footer=MANUAL_FOOTER),
        POLICY_NAME: render_docx(POLICY_TEXT, title=POLICY_TITLE),
        LOGO_NAME: render_png(),
    }
    written = []
    for name, data in outputs.items():
        path = out_dir / name
        path.write_bytes(data)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DOCS_DIR, help="output directory")
    args = parser.parse_args(argv)
    for path in build(args.out):
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
