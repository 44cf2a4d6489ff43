"""docs/protocol.md §3.8 carries the wire core's field table and string forms, exactly as jc.wire holds them."""

from __future__ import annotations

import re
from pathlib import Path

from jc import records, wire

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def _num(n: int) -> str:
    """A bound as the doc writes it: 2^k and 2^k-1 for the large ones."""
    for k in range(16, 64):
        if n == 2**k:
            return f"2^{k}"
        if n == 2**k - 1:
            return f"2^{k}-1"
    return str(n)


def render(f: tuple) -> tuple[str, str, str, str]:
    """(field, type, range or form, required) of one field of the table, as the doc's columns."""
    name, t, req = f[0], f[1], f[2]
    required = "yes" if req is True else "no" if req is False else f"unless `{req}`"
    if t in ("int", "key", "num"):
        rng = f"{_num(f[3])}..{_num(f[4])}"
    elif t in ("nnum", "nint"):
        rng = f"{_num(f[3])}..{_num(f[4])} or null"
    elif t in ("free", "opt_free"):
        rng = f"{f[3]}..{f[4]} characters"
    elif t == "counters":
        rng = f"at most {f[3]}; names `ref`, at most {f[4]} characters; values 0..2^53"
    elif t == "enum":
        rng = ", ".join(f"`{c}`" for c in f[3])
    elif t == "str":
        rng = f[3]
    elif t == "text":
        rng = f"{f[3]}..{f[4]} characters"
    elif t in ("comps", "objs"):
        rng = f"{f[3]}..{f[4]} items"
        if t == "objs":
            t = f"objs `{f[5]}`"
    elif t == "file":
        rng = "path or `@manifest`" if f[3] else "path"
    else:
        rng = "—"
    return f"`{name}`", t, rng, required


def code_rows(tables: dict = wire.FIELDS) -> list[tuple[str, ...]]:
    return [(f"`{table}`",) + render(f) for table, fields in tables.items() for f in fields]


def doc_rows(header: str) -> list[tuple[str, ...]]:
    """The rows of the Markdown table whose header line starts with `header`."""
    lines = DOC.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(tuple(c.strip() for c in line.strip().strip("|").split(" | ")))
    return rows


def test_doc_field_table_is_the_cores():
    assert doc_rows("| table | field |") == code_rows()


def _expand(cls: str) -> str:
    """The characters of a class written as `[a-z0-9-]`."""
    body = re.fullmatch(r"`\[(.*)\]`", cls).group(1)
    out, i = [], 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            out.extend(chr(c) for c in range(ord(body[i]), ord(body[i + 2]) + 1))
            i += 3
        else:
            out.append(body[i])
            i += 1
    return "".join(sorted(set(out)))


def test_doc_record_table_is_the_cores():
    assert doc_rows("| record | field |") == code_rows(records.RECORDS)


def test_doc_forms_are_the_cores():
    want = [(f"`{name}`", "".join(sorted(set(chars))), f"{lo}..{hi}") for name, (chars, lo, hi) in wire.FORMS.items()]
    got = [(form, _expand(chars), length) for form, chars, length, _ in doc_rows("| form | characters |")]
    assert got == want


def test_doc_tables_cover_every_kind_and_switch_value():
    tables = set(wire.FIELDS)
    for kind, field in wire.SWITCH.items():
        choices = next(f[3] for f in wire.FIELDS[kind] if f[0] == field)
        assert {f"{kind}.{c}" for c in choices} <= tables
    assert set(wire.K.KINDS) <= tables


if __name__ == "__main__":
    for head, tables in (("table", wire.FIELDS), ("record", records.RECORDS)):
        print(f"| {head} | field | type | range or form | required |\n| --- | --- | --- | --- | --- |")
        for row in code_rows(tables):
            print("| " + " | ".join(row) + " |")
        print()
