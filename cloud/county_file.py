"""Reading and checking a county's village registry file (CSV or XLSX), without the database.

Two tables: the villages (行政村) with their towns, and the service points of the three tiers (the district
hub, the town co-delivery stations, the village points). Every problem is collected with its row number
(as the spreadsheet shows it), its column (as the file spells it) and a reason, so
that a bad file can be refused whole with every bad row named. docs/cloud.md, "Village registry".
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .constants import STATION_ID_RE
from .errors import CloudError

CODE_RE = re.compile(r"^\d{12}$")
NAME_MAX = 64
POINT_NAME_MAX = 128
DISTANCE_MAX_KM = 300.0
# the coordinates of a place in China (a swapped latitude and longitude falls outside)
LAT_RANGE = (3.0, 54.0)
LON_RANGE = (73.0, 136.0)

VILLAGE_COLUMNS = {
    "code": ("code", "区划代码", "统计用区划代码"),
    "name": ("name", "村名", "行政村"),
    "town": ("town", "乡镇", "乡镇街道"),
    "population": ("population", "人口"),
    "distance_km": ("distance_km", "距离公里"),
    "lat": ("lat", "纬度"),
    "lon": ("lon", "经度"),
}
VILLAGE_REQUIRED = ("code", "name", "town", "population", "distance_km")
POINT_COLUMNS = {
    "id": ("id", "站点编号"),
    "name": ("name", "站点名称"),
    "kind": ("kind", "类型"),
    "town": ("town", "乡镇", "乡镇街道"),
    "village_code": ("village_code", "区划代码", "村区划代码"),
    "lat": ("lat", "纬度"),
    "lon": ("lon", "经度"),
}
POINT_REQUIRED = ("id", "name", "kind")
# the station kinds (constants.STATION_KINDS) of the three tiers, with the Chinese names a county office writes
POINT_KINDS = {
    "district_hub": ("district_hub", "区级快递共同配送中心", "区级中心", "县级中心"),
    "town_station": ("town_station", "镇级快递共同配送站", "镇级共配站", "乡镇共配站"),
    "village_shop": ("village_shop", "商超", "便民店", "超市", "小卖部"),
    "party_service_centre": ("party_service_centre", "党群服务中心"),
    "postal_point": ("postal_point", "邮政网点", "村邮站", "邮政所"),
}
VILLAGE_TIER = ("village_shop", "party_service_centre", "postal_point")
VILLAGE_SHEETS = ("villages", "村", "行政村")
POINT_SHEETS = ("points", "站点")
HEADER_SEARCH_ROWS = 10
MAX_FILE_BYTES = 20 * 1024 * 1024  # a county's list is some hundred kilobytes


@dataclass(frozen=True)
class Problem:
    """One reason a row is refused."""

    table: str
    row: int
    column: str
    reason: str

    def __str__(self) -> str:
        return f"{self.table} row {self.row}, {self.column}: {self.reason}"


@dataclass(frozen=True)
class VillageRow:
    """One checked village."""

    row: int
    code: str
    name: str
    town: str
    population: int
    distance_km: float
    lat: float | None
    lon: float | None

    @property
    def town_code(self) -> str:
        return self.code[:9] + "000"


@dataclass(frozen=True)
class PointRow:
    """One checked service point (a station of one of the three tiers)."""

    row: int
    id: str
    name: str
    kind: str
    town: str | None
    village_code: str | None
    lat: float | None
    lon: float | None


@dataclass
class CountyFile:
    """What a registry file holds once read: checked rows and every problem found."""

    villages: list[VillageRow] = field(default_factory=list)
    points: list[PointRow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def county_code(self) -> str | None:
        return self.villages[0].code[:6] + "000000" if self.villages else None

    def rejected_rows(self) -> int:
        return len({(p.table, p.row) for p in self.problems})


class CountyFileError(CloudError):
    """The file cannot be read at all (missing, not CSV or XLSX, an unknown encoding)."""


def _norm(value: Any) -> str:
    """A cell as text: spreadsheet numbers without a trailing .0, stripped."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _key(text: str) -> str:
    """A header or keyword as compared: full-width forms folded, case, spaces and brackets dropped."""
    text = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"[\s()（）_\-]", "", text)


def decode_csv(data: bytes) -> str:
    """CSV bytes as text: UTF-8 with or without a BOM, else GB18030 (Excel's default on Chinese Windows)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise CountyFileError(f"neither UTF-8 nor GB18030 (byte {exc.start})") from None


def _csv_rows(path: Path) -> list[list[str]]:
    try:
        text = decode_csv(path.read_bytes())
    except OSError as exc:
        raise CountyFileError(f"cannot read {path}: {exc.strerror}") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        return [[_norm(c) for c in row] for row in reader]
    except csv.Error as exc:
        raise CountyFileError(f"{path.name} line {reader.line_num}: not CSV ({exc})") from None


def _sheet_rows(ws) -> list[list[str]]:
    return [[_norm(c) for c in row] for row in ws.iter_rows(values_only=True)]


def read_tables(path: Path, points_path: Path | None = None) -> tuple[list[list[str]], list[list[str]] | None]:
    """The villages table and the points table (None if the file has none) as rows of text cells.

    An XLSX workbook holds the villages in a sheet named villages / 村 / 行政村 (else its first sheet) and
    the points in a sheet named points / 站点; a CSV file holds the villages only. `points_path`, a CSV or
    XLSX file of its own, gives the points instead."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise CountyFileError(f"no such file: {path}")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise CountyFileError(f"{path.name} is larger than {MAX_FILE_BYTES // 2**20} MB: not a county's list")
    points = None
    if suffix == ".csv":
        villages = _csv_rows(path)
    elif suffix in (".xlsx", ".xlsm"):
        from openpyxl import load_workbook

        try:
            wb = load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds for a damaged file
            raise CountyFileError(f"not a readable XLSX workbook: {exc}") from None
        try:
            by_key = {_key(name): name for name in wb.sheetnames}
            vname = next((by_key[k] for k in map(_key, VILLAGE_SHEETS) if k in by_key), wb.sheetnames[0])
            villages = _sheet_rows(wb[vname])
            pname = next((by_key[k] for k in map(_key, POINT_SHEETS) if k in by_key), None)
            if pname is not None and pname != vname:
                points = _sheet_rows(wb[pname])
        finally:
            wb.close()
    else:
        raise CountyFileError(f"{path.name}: a .csv or .xlsx file is needed")
    if points_path is not None:
        if points is not None:
            raise CountyFileError(f"{path.name} has a points sheet already; leave out the separate points file")
        points, extra = read_tables(points_path)
        if extra is not None:
            raise CountyFileError(f"{points_path.name}: a points file has one table")
    return villages, points


def _header(rows: list[list[str]], table: str, columns: dict[str, tuple[str, ...]], required: tuple[str, ...],
            problems: list[Problem]) -> tuple[int, dict[str, int], dict[str, str]]:
    """The header row's index, the column positions and the file's own spelling of each known column.

    The header is the first row naming every required column among the first HEADER_SEARCH_ROWS, so a
    title row above it (a sheet's caption, merged across the columns) is passed over."""
    aliases = {_key(a): name for name, names in columns.items() for a in names}

    def known(row: list[str]) -> set[str]:
        return {aliases[_key(c)] for c in row if c and _key(c) in aliases}

    at = next((i for i, row in enumerate(rows[:HEADER_SEARCH_ROWS]) if set(required) <= known(row)), None)
    if at is None:  # name what the best candidate lacks
        at = max(range(min(len(rows), HEADER_SEARCH_ROWS)), key=lambda i: len(known(rows[i])), default=0)
    pos: dict[str, int] = {}
    spelled: dict[str, str] = {}
    for i, cell in enumerate(rows[at] if rows else []):
        name = aliases.get(_key(cell)) if cell else None
        if name is None:
            continue
        if name in pos:
            problems.append(Problem(table, at + 1, cell, f"the same column as {spelled[name]!r}"))
            continue
        pos[name] = i
        spelled[name] = cell
    # a missing column is named in the header's language, and in the other one too
    zh = any(re.search(r"[\u4e00-\u9fff]", c) for c in (rows[at] if rows else []))
    for name in required:
        if name not in pos:
            ours, other = (columns[name][1], columns[name][0]) if zh else columns[name][:2]
            problems.append(Problem(table, at + 1, ours, f"missing from the header (or {other})"))
    return at, pos, spelled


def _cells(row: list[str], pos: dict[str, int]) -> dict[str, str]:
    return {name: row[i] if i < len(row) else "" for name, i in pos.items()}


def _number(text: str, *, whole: bool) -> float | int | None:
    text = unicodedata.normalize("NFKC", text).replace(" ", "")
    if re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d+)?", text):
        text = text.replace(",", "")
    try:
        return int(text) if whole else float(text)
    except ValueError:
        return None


def _coords(cells: dict[str, str], bad) -> tuple[float | None, float | None]:
    """Latitude and longitude: both or neither, within China."""
    lat_s, lon_s = cells.get("lat", ""), cells.get("lon", "")
    if not lat_s and not lon_s:
        return None, None
    if not lat_s or not lon_s:
        bad("lat" if not lat_s else "lon", "give both coordinates or neither")
        return None, None
    out = []
    for name, text, (lo, hi) in (("lat", lat_s, LAT_RANGE), ("lon", lon_s, LON_RANGE)):
        v = _number(text, whole=False)
        if v is None or v != v:
            bad(name, f"not a number: {text!r}")
        elif not lo <= v <= hi:
            bad(name, f"{v} is outside China ({lo}-{hi}); latitude and longitude swapped?")
        else:
            out.append(v)
    return (out[0], out[1]) if len(out) == 2 else (None, None)


def check_villages(rows: list[list[str]], problems: list[Problem]) -> list[VillageRow]:
    """Checked village rows; every problem found goes to `problems`."""
    table = "villages"
    before = len(problems)
    at, pos, spelled = _header(rows, table, VILLAGE_COLUMNS, VILLAGE_REQUIRED, problems)
    if len(problems) > before:
        return []
    out: list[VillageRow] = []
    codes: dict[str, int] = {}
    names: dict[tuple[str, str], int] = {}
    town_of_prefix: dict[str, tuple[str, int]] = {}
    prefix_of_town: dict[str, tuple[str, int]] = {}
    county: tuple[str, int] | None = None
    for n, row in enumerate(rows[at + 1:], start=at + 2):
        if not any(row):
            continue  # blank lines at the end of a sheet
        cells = _cells(row, pos)
        found: list[Problem] = []

        def bad(name: str, reason: str) -> None:
            found.append(Problem(table, n, spelled.get(name, name), reason))  # noqa: B023 -- used in this row only

        code = unicodedata.normalize("NFKC", cells["code"]).replace(" ", "")
        name, town = cells["name"], cells["town"]
        if re.fullmatch(r"\d(\.\d+)?e\+\d+", code, re.IGNORECASE):
            bad("code", f"{cells['code']!r} lost its digits to Excel's scientific notation: format the column "
                        "as text (文本) and type the codes again")
        elif not CODE_RE.match(code):
            bad("code", f"not a 12-digit 统计用区划代码: {cells['code']!r}")
        elif code[9:] == "000" or code[6:9] == "000":
            bad("code", f"{code} is the code of a town or county, not of a village")
        else:
            if code in codes:
                bad("code", f"{code} repeats row {codes[code]}")
            if county is None:
                county = (code[:6], n)
            elif code[:6] != county[0]:
                bad("code", f"{code} is not in county {county[0]} (row {county[1]}): one county per file")
            if town:
                # the code's nine-digit town part and the town's name go together, one to one
                prefix = code[:9]
                seen_town, seen_prefix = town_of_prefix.get(prefix), prefix_of_town.get(town)
                if seen_town and seen_town[0] != town:
                    bad("code", f"town part {prefix} is {seen_town[0]} in row {seen_town[1]}, not {town}")
                elif seen_prefix and seen_prefix[0] != prefix:
                    bad("code", f"{town} has town part {seen_prefix[0]} in row {seen_prefix[1]}, not {prefix}")
                else:
                    town_of_prefix.setdefault(prefix, (town, n))
                    prefix_of_town.setdefault(town, (prefix, n))
        for col, value, limit in (("name", name, NAME_MAX), ("town", town, NAME_MAX)):
            if not value:
                bad(col, "empty")
            elif len(value) > limit:
                bad(col, f"longer than {limit} characters")
        if name and town and (town, name) in names:
            bad("name", f"{name} repeats row {names[(town, name)]} in {town}")
        population = _number(cells["population"], whole=True)
        if population is None or population < 0:
            bad("population", f"not a whole number of people: {cells['population']!r}")
        distance = _number(cells["distance_km"], whole=False)
        if distance is None or distance != distance or not 0 <= distance <= DISTANCE_MAX_KM:
            bad("distance_km", f"not a distance in km (0-{DISTANCE_MAX_KM:g}): {cells['distance_km']!r}")
        lat, lon = _coords(cells, bad)
        if found:
            problems.extend(found)
            continue
        codes[code] = n
        names[(town, name)] = n
        assert population is not None and distance is not None  # else bad() was called: found is not empty
        out.append(VillageRow(row=n, code=code, name=name, town=town, population=int(population),
                              distance_km=float(distance), lat=lat, lon=lon))
    if not out and not problems:
        problems.append(Problem(table, at + 2, "-", "the file has no villages"))
    return out


def kind_of(text: str) -> str | None:
    """The station kind a points row names, in English or Chinese."""
    k = _key(text)
    return next((kind for kind, names in POINT_KINDS.items() if k in map(_key, names)), None)


def check_points(rows: list[list[str]], problems: list[Problem], *, village_codes: dict[str, str],
                 towns: set[str]) -> list[PointRow]:
    """Checked service points. `village_codes` maps each known village code (in the file or the registry)
    to its town, `towns` the known towns' names."""
    table = "points"
    before = len(problems)
    at, pos, spelled = _header(rows, table, POINT_COLUMNS, POINT_REQUIRED, problems)
    if len(problems) > before:
        return []
    out: list[PointRow] = []
    ids: dict[str, int] = {}
    for n, row in enumerate(rows[at + 1:], start=at + 2):
        if not any(row):
            continue
        cells = _cells(row, pos)
        found: list[Problem] = []

        def bad(name: str, reason: str) -> None:
            # noqa below: bad() is called only while this row is read
            found.append(Problem(table, n, spelled.get(name, POINT_COLUMNS[name][0]), reason))  # noqa: B023

        sid, name = cells["id"], cells["name"]
        if not STATION_ID_RE.match(sid):
            bad("id", f"not a station id (1-32 of a-z, 0-9, -): {sid!r}")
        elif sid in ids:
            bad("id", f"{sid} repeats row {ids[sid]}")
        if not name:
            bad("name", "empty")
        elif len(name) > POINT_NAME_MAX:
            bad("name", f"longer than {POINT_NAME_MAX} characters")
        kind = kind_of(cells["kind"])
        if kind is None:
            bad("kind", f"not one of {', '.join(k for k in POINT_KINDS)} "
                        f"(or {', '.join(names[1] for names in POINT_KINDS.values())}): {cells['kind']!r}")
        town = cells.get("town") or None
        vcode = unicodedata.normalize("NFKC", cells.get("village_code", "")).replace(" ", "") or None
        if town is not None and town not in towns:
            bad("town", f"{town} is not a town of the file or the registry")
        if vcode is not None:
            if vcode not in village_codes:
                bad("village_code", f"{vcode} is not a village of the file or the registry")
            elif town is not None and village_codes[vcode] != town:
                bad("town", f"village {vcode} is in {village_codes[vcode]}, not {town}")
        if kind == "district_hub" and (vcode or town):
            bad("village_code" if vcode else "town", "a district hub belongs to no town or village")
        elif kind == "town_station" and town is None and vcode is None:
            bad("town", "a town co-delivery station needs its town")
        elif kind in VILLAGE_TIER and vcode is None:
            bad("village_code", "a village point needs its village's code")
        lat, lon = _coords(cells, bad)
        if found:
            problems.extend(found)
            continue
        ids[sid] = n
        assert kind is not None  # else bad() was called: found is not empty
        out.append(PointRow(row=n, id=sid, name=name, kind=kind, lat=lat, lon=lon,
                            town=town or (village_codes[vcode] if vcode else None), village_code=vcode))
    return out
