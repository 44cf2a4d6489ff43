"""Statistics exports as a county office opens them in WPS or Excel: its language, names, dates and types."""

from __future__ import annotations

import io
from datetime import datetime

from openpyxl import load_workbook

from cloud.exports import Sheet

CARRIERS = {"ZTO": ("中通快递", "ZTO Express"), "SF": ("顺丰速运", "SF Express")}


def _sheet(data: bytes) -> list[tuple]:
    return list(load_workbook(io.BytesIO(data)).active.iter_rows(values_only=True))


def test_flags_read_in_words_with_a_real_local_time():
    rows = [{"id": 7, "ref": "p-2093d67b312a", "waybill": "ZT123456789", "carrier": "ZTO", "station_id": "lz-01",
             "kind": "not_received", "at": 1_764_950_400.0, "missing": "deposit,pickup", "resolved": False}]
    got = _sheet(Sheet("flags", rows, lang="zh", carriers=CARRIERS).xlsx())
    assert got[0] == ("时间", "运单号", "快递公司", "站点编号", "类型", "缺少证据", "已处理")
    # 16:00 UTC is midnight the next day in Asia/Shanghai; the internal parcel ref is not exported
    assert got[1] == (datetime(2025, 12, 6, 0, 0), "ZT123456789", "中通快递", "lz-01", "收件人报未收到",
                      "入柜记录、取件记录", "否")
    text = Sheet("flags", rows, lang="en", carriers=CARRIERS).csv().decode("utf-8-sig")
    assert text.splitlines()[1] == ("2025-12-06 00:00,ZT123456789,ZTO Express,lz-01,recipient reports not received,"
                                    "\"deposit record, pickup record\",no")
    assert "p-2093d67b312a" not in text


def test_waits_shares_and_money_in_their_own_formats():
    times = [{"hours": "0-2", "lo": 0, "hi": 2, "parcels": 3, "share": 0.25},
             {"hours": "72+", "lo": 72, "hi": None, "parcels": 9, "share": 0.75}]
    csv = Sheet("pickup_times", times, lang="zh", carriers={}).csv()
    assert csv.startswith(b"\xef\xbb\xbf")
    assert csv.decode("utf-8-sig").splitlines() == ["等待时长,包裹数,占比", "2 小时以内,3,25.0%", "3 天以上,9,75.0%"]
    wb = load_workbook(io.BytesIO(Sheet("pickup_times", times, lang="zh", carriers={}).xlsx())).active
    assert wb.cell(2, 3).value == 0.25 and wb.cell(2, 3).number_format == "0.0%"
    fees = [{"town": "临泽镇", "station_id": "lz-01", "station": "冯家村便民店", "direction": "inbound",
             "reason": "偏远村派送费", "parcels": 4, "total_yuan": 8.0, "carriers": "SF ZTO"}]
    row = _sheet(Sheet("fees", fees, lang="zh", carriers=CARRIERS).xlsx())[1]
    assert row == ("临泽镇", "冯家村便民店", "lz-01", "收件", "偏远村派送费", 4, 8, "顺丰速运、中通快递")
    door = [{"town": "临泽镇", "village": "冯家村", "distance_km": 12.5, "station_id": "lz-01",
             "station": "冯家村便民店", "waiting": 2, "oldest_wait_h": 680.8, "delivered_door": 1}]
    assert _sheet(Sheet("door_help", door, lang="en", carriers={}).xlsx())[0][6] == "Longest wait (days)"
    assert _sheet(Sheet("door_help", door, lang="en", carriers={}).xlsx())[1][6] == 28.4


def test_a_name_with_a_control_character_still_gives_a_readable_file():
    """A station named with a stray control character (pasted from elsewhere) must not break the whole file."""
    fees = [{"town": "临泽镇", "station_id": "lz-01", "station": "冯家村\x0b便民店", "direction": "inbound",
             "reason": "偏远村派送费", "parcels": 4, "total_yuan": 8.0, "carriers": "SF"}]
    row = _sheet(Sheet("fees", fees, lang="zh", carriers=CARRIERS).xlsx())[1]
    assert row[1] == "冯家村便民店"
