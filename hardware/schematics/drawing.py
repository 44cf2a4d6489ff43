"""Drawings of the board: netlistsvg schematic sheets and the installer's connector diagram (plain SVG)."""

import json
from html import escape
from pathlib import Path

POWER_NETS = {"GND": "gnd", "+3V3": "vcc", "VIN": "vcc"}
# netlistsvg analog-skin symbol and pin renames for the two- and three-terminal parts.
SKIN = {
    "R": ("r_v", {"a": "A", "b": "B"}),
    "C": ("c_v", {"a": "A", "b": "B"}),
    "CP": ("c_v", {"pos": "A", "neg": "B"}),
    "L": ("l_v", {"a": "A", "b": "B"}),
    "F": ("r_v", {"a": "A", "b": "B"}),
    "D": ("d_v", {"A": "+", "K": "-"}),
    "LED": ("d_led_v", {"A": "+", "K": "-"}),
    "TVS": ("d_v", {"a": "+", "b": "-"}),
    "ESD": ("d_v", {"gnd": "+", "io": "-"}),
    "NPN": ("q_npn", {"B": "B", "C": "C", "E": "E"}),
}
# Sheets drawn, in order; one compartment stands for all of them.
SHEETS = ("power", "mcu", "expanders", "compartment1", "field_io")


def netlistsvg_module(circuit, sheet: str) -> dict:
    """A yosys-style JSON module of the parts on one sheet; nets leaving the sheet become named ports."""
    parts = [p for p in circuit.parts if p.fields.get("Sheet") == sheet]
    bits: dict[str, int] = {}
    counter = iter(range(2, 1_000_000))
    cells, ports = {}, {}
    on_sheet = {id(p) for p in parts}

    def bit(net_name):
        if net_name not in bits:
            bits[net_name] = next(counter)
        return bits[net_name]

    for part in parts:
        # Parts without a skin symbol become labelled boxes: "U6 SP3485", "J18 RS485_IN".
        skin_type, rename = SKIN.get(part.name, (f"{part.ref} {part.value}", None))
        conns, dirs = {}, {}
        for pin in part.pins:
            if pin.net is None or pin.net.name.startswith("__NOCONNECT"):
                continue
            pname = rename.get(pin.name, pin.name) if rename else f"{pin.num}:{pin.name}"
            net = pin.net.name
            if net in POWER_NETS:
                # A separate rail symbol per pin keeps power wiring from crossing the whole sheet.
                b = next(counter)
                cells[f"{net}_{part.ref}_{pin.num}"] = {
                    "type": POWER_NETS[net], "port_directions": {"A": "output" if net != "GND" else "input"},
                    "connections": {"A": [b]}, "attributes": {"name": net, "value": net},
                }
            else:
                b = bit(net)
                leaves = any(id(other.part) not in on_sheet for other in pin.net.pins)
                if leaves and net not in ports:
                    ports[net] = {"direction": "output", "bits": [b]}
            conns[pname] = [b]
            dirs[pname] = "input" if pin.func.name in ("INPUT", "PWRIN") else "output"
        cells[part.ref] = {"type": skin_type, "port_directions": dirs, "connections": conns,
                           "attributes": {"value": str(part.value)}}
    return {"modules": {sheet: {"ports": ports, "cells": cells}}}


def render_schematic(circuit, out_dir: Path, netlistsvg, run, to_png) -> dict:
    """One SVG (and PNG where possible) per sheet through netlistsvg; returns the files written."""
    files = {}
    if netlistsvg is None:
        return files
    skin = netlistsvg.parent.parent / "lib" / "analog.svg"
    for sheet in SHEETS:
        src = out_dir / f"sheet_{sheet}.json"
        svg = out_dir / f"sheet_{sheet}.svg"
        src.write_text(json.dumps(netlistsvg_module(circuit, sheet), indent=1), encoding="utf-8")
        if run(["node", str(netlistsvg), str(src), "--skin", str(skin), "-o", str(svg)], out_dir) and svg.exists():
            files[f"sheet_{sheet}_svg"] = svg
            png = svg.with_suffix(".png")
            if to_png(svg, png):
                files[f"sheet_{sheet}_png"] = png
    return files


# --- installer's connector diagram -------------------------------------------------------------------------
WIRE_COLOURS = {"VIN": "#d62728", "LOCK+": "#d62728", "GND": "#222222", "LOCK-": "#1f77b4", "3V3": "#ff7f0e",
                "A": "#2ca02c", "B": "#9467bd"}
# Where each field device sits relative to its connector, and what it is called.
DEVICES = {
    "PWR_IN": "12-24 V DC supply (locks run from it: 12 V locks on 12 V, 24 V locks on 24 V)",
    "C1": "Compartment 1: solenoid lock, door switch (closed = door shut), IR reflective sensor",
    "KEYPAD": "4x3 matrix keypad (rows 1-4 = keys 1-3, 4-6, 7-9, *0#)",
    "RS485_IN": "RS-485 from the previous board / lock board",
    "RS485_OUT": "RS-485 to the next lock board (fit TERM jumper on the last board only)",
    "PROG": "USB-UART adapter for flashing (3.3 V logic, DTR/RTS auto-reset)",
    "OLED": "SSD1306 128x64 I2C display (optional)",
    "TERM": "RS-485 120 ohm termination jumper",
}


def connectors(circuit) -> list[dict]:
    """Every connector on the board with its pin numbers, names and nets, compartments folded into C1."""
    rows = []
    for p in sorted(circuit.parts, key=lambda p: (len(p.ref), p.ref)):
        if not p.name.startswith("CONN_"):
            continue
        rows.append({"ref": p.ref, "label": str(p.value), "description": p.description,
                     "pins": [(int(pin.num), pin.name, pin.net.name if pin.net else "") for pin in p.pins]})
    return rows


def render_wiring(circuit, out_dir: Path, to_png) -> dict:
    """The installer's picture: the board with each field connector, its pinout and the device it feeds."""
    conns = [c for c in connectors(circuit) if not (c["label"].startswith("C") and c["label"][1:].isdigit()
                                                   and c["label"] != "C1")]
    n_comp = sum(1 for c in connectors(circuit) if c["label"].startswith("C") and c["label"][1:].isdigit())
    row_h, pad, width = 18, 14, 1100
    y = 70
    body = []
    board_x, board_w = 40, 300
    boxes = []
    for c in conns:
        h = pad * 2 + row_h * len(c["pins"]) + 10
        boxes.append((c, y, h))
        y += h + 22
    height = y + 40
    body.append(f'<rect x="{board_x}" y="50" width="{board_w}" height="{height - 90}" rx="12" fill="#e8f3e8" '
                f'stroke="#2e6b2e" stroke-width="2"/>')
    body.append(f'<text x="{board_x + 20}" y="{height // 2}" font-size="22" fill="#2e6b2e" '
                f'transform="rotate(-90 {board_x + 20} {height // 2})">jincun locker controller '
                f'(ESP32-WROOM-32E)</text>')
    for c, top, h in boxes:
        cx = board_x + board_w - 170
        body.append(f'<rect x="{cx}" y="{top}" width="170" height="{h}" fill="#ffffff" stroke="#333"/>')
        title = f'{c["ref"]} {c["label"]}' + (f"  (x{n_comp}: C1-C{n_comp})" if c["label"] == "C1" else "")
        body.append(f'<text x="{cx + 8}" y="{top + 16}" font-size="13" font-weight="bold">{escape(title)}</text>')
        for i, (num, name, net) in enumerate(c["pins"]):
            py = top + pad + 16 + i * row_h
            colour = WIRE_COLOURS.get(name, "#555555")
            body.append(f'<text x="{cx + 8}" y="{py + 4}" font-size="12">{num}  {escape(name)}</text>')
            body.append(f'<circle cx="{cx + 170}" cy="{py}" r="4" fill="{colour}"/>')
            body.append(f'<line x1="{cx + 170}" y1="{py}" x2="{cx + 330}" y2="{py}" stroke="{colour}" '
                        f'stroke-width="3"/>')
            body.append(f'<text x="{cx + 340}" y="{py + 4}" font-size="11" fill="#444">{escape(net)}</text>')
        dev = DEVICES.get(c["label"], c["description"])
        body.append(f'<rect x="{cx + 440}" y="{top}" width="{width - cx - 470}" height="{h}" rx="8" '
                    f'fill="#f4f4fb" stroke="#7777aa"/>')
        words, line, lines = dev.split(), "", []
        for w in words:
            if len(line) + len(w) > 56:
                lines.append(line)
                line = w
            else:
                line = f"{line} {w}".strip()
        lines.append(line)
        for i, text in enumerate(lines):
            body.append(f'<text x="{cx + 452}" y="{top + 20 + i * 16}" font-size="13">{escape(text)}</text>')
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Noto Sans CJK SC, sans-serif">'
           f'<rect width="100%" height="100%" fill="#ffffff"/>'
           f'<text x="40" y="32" font-size="20" font-weight="bold">Locker controller: field wiring '
           f'(wire colours: red = supply +, black = GND, blue = lock -)</text>' + "".join(body) + "</svg>")
    path = out_dir / "wiring.svg"
    path.write_text(svg, encoding="utf-8")
    files = {"wiring_svg": path}
    png = path.with_suffix(".png")
    if to_png(path, png):
        files["wiring_png"] = png
    return files


def render_all(circuit, out_dir: Path, netlistsvg, run, to_png) -> dict:
    """Every drawing of the board; netlistsvg is the path of its CLI script, or None to skip the sheets."""
    files = render_wiring(circuit, out_dir, to_png)
    files.update(render_schematic(circuit, out_dir, netlistsvg, run, to_png))
    return files
