"""The county statistics as files a county office opens in WPS or Excel: headers in the reader's language,
carriers by name, local dates, shares as percentages. XLSX cells are typed (numbers, dates, percentages);
CSV is UTF-8 with a byte-order mark, so both programs read the Chinese right."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from jincun.i18n import translator
from .wording import CST, wait_range

# per table: (field, header key, kind); kind says how a value is written (see `_cell`)
COLUMNS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "coverage": (("town", "town", "text"), ("villages", "villages", "int"), ("covered", "covered", "int"),
                 ("uncovered", "uncovered", "int"), ("coverage", "rate", "pct")),
    "volumes": (("day", "day", "day"), ("town", "town", "text"), ("village", "village", "text"),
                ("carrier", "carrier", "carrier"), ("inbound", "inbound", "int"), ("outbound", "outbound", "int")),
    "pickup_times": (("hours", "hours", "wait"), ("parcels", "parcels_n", "int"), ("share", "share", "pct")),
    "overdue": (("town", "town", "total"), ("deposited", "deposited_n", "int"), ("overdue", "overdue_n", "int"),
                ("overdue_rate", "overdue_rate", "pct")),
    "flags": (("at", "time", "time"), ("waybill", "waybill", "text"), ("carrier", "carrier", "carrier"),
              ("station_id", "station_code", "text"), ("kind", "kind", "word"), ("missing", "missing", "evidence"),
              ("resolved", "flag_resolved", "bool")),
    "subsidy": (("village", "village", "text"), ("town", "town", "text"), ("distance_km", "distance_km", "float"),
                ("population", "population", "int"), ("parcels_per_day", "per_day", "float"),
                ("covered", "covered", "bool"), ("score", "score", "float")),
    "produce": (("town", "town", "text"), ("carrier", "carrier", "carrier"), ("parcels", "parcels_n", "int"),
                ("weight_kg", "weight_kg", "float")),
    "fees": (("town", "town", "text"), ("station", "station", "text"), ("station_id", "station_code", "text"),
             ("direction", "direction", "word"), ("reason", "fee_reason", "text"), ("parcels", "parcels_n", "int"),
             ("total_yuan", "total_yuan", "yuan"), ("carriers", "carrier", "carriers")),
    "door_help": (("town", "town", "text"), ("village", "village", "text"), ("station", "station", "text"),
                  ("station_id", "station_code", "text"), ("distance_km", "distance_km", "float"),
                  ("waiting", "waiting_n", "int"), ("oldest_wait_h", "oldest_wait_days", "days"),
                  ("delivered_door", "delivered_door_n", "int")),
    "dispatch": (("town", "town", "text"), ("town_station", "town_station", "text"), ("villages", "villages", "int"),
                 ("served", "served_villages", "int"), ("parcels_per_day", "per_day", "float"),
                 ("farthest_km", "farthest_km", "float"), ("mean_km", "mean_km", "float")),
}
TOTAL_ROW = "合计/total"  # the overdue table's last row (cloud/stats.py)
FORMATS = {"pct": "0.0%", "time": "yyyy-mm-dd hh:mm", "day": "yyyy-mm-dd", "yuan": "#,##0.00", "days": "0.0"}


class Sheet:
    """One table made ready for a file: its headers and its rows of typed values, in one language."""

    def __init__(self, name: str, rows: list[dict[str, Any]], *, lang: str,
                 carriers: dict[str, tuple[str, str]]) -> None:
        t = translator(lang)
        present = set(rows[0]) if rows else set()
        # a volumes table has one of town, village or carrier: only the one it was grouped by
        self.columns = [c for c in COLUMNS[name] if not rows or c[0] in present]
        self.headers = [t(key) for _, key, _ in self.columns]
        self.kinds = [kind for _, _, kind in self.columns]
        self.name, self.lang = name, lang

        def name_of(code: str) -> str:
            return carriers[code][1 if lang == "en" else 0] if code in carriers else code

        self.rows = [[self._value(r.get(field), kind, r, t, name_of) for field, _, kind in self.columns]
                     for r in rows]

    def _value(self, v: Any, kind: str, row: dict, t, name_of) -> Any:
        """The value as it goes into a typed cell (None stays empty)."""
        if v is None and kind != "wait":
            return None
        if kind == "carrier":
            return name_of(v)
        if kind == "carriers":
            return ("、" if self.lang == "zh" else ", ").join(name_of(c) for c in str(v).split(" ") if c)
        if kind == "word":
            return t(v)
        if kind == "evidence":
            return ("、" if self.lang == "zh" else ", ").join(t(f"ev.{m}") for m in str(v).split(",") if m) or None
        if kind == "bool":
            return t("yes" if v else "no")
        if kind == "total":
            return t("total") if v == TOTAL_ROW else v
        if kind == "wait":
            return wait_range(row["lo"], row["hi"], self.lang)
        if kind == "time":
            return datetime.fromtimestamp(v, CST).replace(tzinfo=None)
        if kind == "day":
            return datetime.strptime(v, "%Y-%m-%d")
        if kind == "days":
            return round(v / 24, 1)
        return v

    def csv(self) -> bytes:
        """UTF-8 CSV with a BOM: local dates as text, shares as 12.3%."""
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(self.headers)
        for row in self.rows:
            writer.writerow([_text(v, kind) for v, kind in zip(row, self.kinds)])
        return ("\ufeff" + buf.getvalue()).encode("utf-8")

    def xlsx(self) -> bytes:
        """One worksheet: a bold header row, then typed cells with date, percentage and money formats."""
        from openpyxl import Workbook
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
        from openpyxl.styles import Font

        wb = Workbook()
        ws = wb.active
        ws.title = self.name[:31]
        ws.append(self.headers)
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for row in self.rows:
            # a control character (a name typed with one) would make the whole file unreadable: drop it
            ws.append([ILLEGAL_CHARACTERS_RE.sub("", v) if isinstance(v, str) else v for v in row])
            for cell, kind in zip(ws[ws.max_row], self.kinds):
                if kind in FORMATS and cell.value is not None:
                    cell.number_format = FORMATS[kind]
        for i, header in enumerate(self.headers):
            ws.column_dimensions[ws.cell(1, i + 1).column_letter].width = max(10, 2 * len(header) + 2)
        ws.freeze_panes = "A2"
        out = io.BytesIO()
        wb.save(out)
        return out.getvalue()


def _text(v: Any, kind: str) -> str:
    if v is None:
        return ""
    if kind == "pct":
        return f"{v * 100:.1f}%"
    if kind == "time":
        return v.strftime("%Y-%m-%d %H:%M")
    if kind == "day":
        return v.strftime("%Y-%m-%d")
    if kind == "yuan":
        return f"{v:.2f}"
    return str(v)

