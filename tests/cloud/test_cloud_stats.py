"""County statistics over an example county, their JSON, CSV and XLSX forms."""

from __future__ import annotations

import io
import re
import time
from datetime import datetime

from cloudkit import admin_headers
from openpyxl import load_workbook
from sqlalchemy import func, select

from cloud import stats
from cloud.wording import duration
from cloud.models import Parcel, Recipient, Station, Village
from cloud.seed import seed_county


def test_county_statistics(cloud):
    factory = cloud.client.app.state.sessionmaker
    now = time.time()
    with factory() as session:
        made = seed_county(session, towns=12, villages=400, parcels_per_station_day=0.3, days=30, now=now)
        assert made["villages"] == 400 and made["towns"] == 12 and made["stations"] > 250
        covered_expected = session.scalar(select(func.count(func.distinct(Station.village_id)))
                                          .where(Station.active.is_(True), Station.id.like("ex7-%")))
    c = cloud.client
    cov = c.get("/api/v1/stats/coverage", headers=admin_headers()).json()
    example = [r for r in cov if r["town"].startswith("示例")]
    assert len(example) == 12 and sum(r["villages"] for r in example) == 400
    assert sum(r["covered"] for r in example) == covered_expected
    assert all(0 < r["coverage"] < 1 and r["covered"] + r["uncovered"] == r["villages"] for r in example)

    with factory() as session:
        total = session.scalar(select(func.count()).select_from(Parcel).where(Parcel.created_at >= now - 30 * 86400))
        outbound = session.scalar(select(func.count()).select_from(Parcel).where(
            Parcel.direction == "outbound", Parcel.produce.is_(True)))
        produce_g = session.scalar(select(func.sum(Parcel.weight_g)).where(
            Parcel.direction == "outbound", Parcel.produce.is_(True)))
        fee_cents = dict(session.execute(select(Parcel.direction, func.sum(Parcel.fee_cents)).where(
            Parcel.fee_cents > 0, Parcel.created_at >= now - 30 * 86400).group_by(Parcel.direction)).all())
        door_waiting = session.scalar(select(func.count()).select_from(Parcel).join(
            Recipient, Recipient.phone == Parcel.phone).where(
            Recipient.door_help.is_(True), Parcel.status.in_(("deposited", "notified"))))  # overdue: going back
        door_done = session.scalar(select(func.count()).select_from(Parcel).where(
            Parcel.status == "delivered_door"))
        late = session.scalar(select(func.count()).select_from(Parcel).where(Parcel.overdue_at.is_not(None)))
    for by in ("town", "village", "carrier"):
        rows = c.get("/api/v1/stats/volumes", params={"by": by, "days": 30}, headers=admin_headers()).json()
        assert sum(r["inbound"] + r["outbound"] for r in rows) == total, by
    times = c.get("/api/v1/stats/pickup_times", headers=admin_headers()).json()
    assert [r["hours"] for r in times][0] == "0-2" and abs(sum(r["share"] for r in times) - 1) < 0.01
    od = c.get("/api/v1/stats/overdue", headers=admin_headers()).json()
    assert od[-1]["overdue"] == late and 0 < od[-1]["overdue_rate"] < 0.2
    prod = c.get("/api/v1/stats/produce", headers=admin_headers()).json()
    assert sum(r["parcels"] for r in prod) == outbound > 0
    # per row rounded to 0.1 kg
    assert abs(sum(r["weight_kg"] for r in prod) - produce_g / 1000) <= 0.05 * len(prod) and produce_g > 0
    fees = c.get("/api/v1/stats/fees", headers=admin_headers()).json()
    for direction in ("inbound", "outbound"):
        charged = sum(r["total_yuan"] for r in fees if r["direction"] == direction)
        assert abs(charged - fee_cents[direction] / 100) < 0.01, direction
    # the extra charges on inbound parcels (二次收费) are listed first
    kinds = [r["direction"] for r in fees]
    assert kinds[0] == "inbound" and kinds == sorted(kinds, key=lambda d: d != "inbound")
    assert {r["reason"] for r in fees if r["direction"] == "inbound"} == {"偏远村派送费"}
    door = c.get("/api/v1/stats/door_help", params={"days": 60}, headers=admin_headers()).json()
    assert sum(r["waiting"] for r in door) == door_waiting > 0
    assert sum(r["delivered_door"] for r in door) == door_done > 0
    # the dispatch list: stations with parcels waiting first, the longest wait first among equals
    waits = [r["waiting"] for r in door]
    assert waits == sorted(waits, reverse=True) and all(r["oldest_wait_h"] > 0 for r in door if r["waiting"])
    sub = c.get("/api/v1/stats/subsidy", headers=admin_headers()).json()
    assert sub[0]["score"] >= sub[-1]["score"] and sub[0]["distance_km"] > 20

    csv = c.get("/api/v1/stats/coverage/export", params={"fmt": "csv"}, headers=admin_headers())
    assert csv.headers["content-type"].startswith("text/csv")
    # WPS and Excel read the BOM as UTF-8; headers are Chinese, shares percentages
    assert csv.content.startswith(b"\xef\xbb\xbf")
    lines = csv.content.decode("utf-8-sig").splitlines()
    assert lines[0] == "乡镇,行政村数,已覆盖,未覆盖,比例" and len(lines) == len(cov) + 1
    assert all(re.fullmatch(r"\d+\.\d%", line.rsplit(",", 1)[1]) for line in lines[1:])
    en = c.get("/api/v1/stats/coverage/export", params={"fmt": "csv", "lang": "en"}, headers=admin_headers())
    assert en.content.decode("utf-8-sig").splitlines()[0] == "Town,Villages,Covered,Uncovered,Rate"
    xlsx = c.get("/api/v1/stats/volumes/export", params={"fmt": "xlsx", "by": "carrier"},
                 headers=admin_headers())
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == ("日期", "快递公司", "收件", "寄件")
    assert sum(r[2] + r[3] for r in rows[1:]) == total
    # typed cells: a real date, carriers by name (one row per carrier code, named from the one table), whole
    # numbers
    assert isinstance(rows[1][0], datetime) and sheet.cell(2, 1).number_format == "yyyy-mm-dd"
    assert {r[1] for r in rows[1:]} <= {"中国邮政", "顺丰速运", "中通快递", "圆通速递", "申通快递", "韵达快递",
                                        "极兔速递", "京东物流", "—"}
    assert all(isinstance(r[2], int) for r in rows[1:])
    ov = load_workbook(io.BytesIO(c.get("/api/v1/stats/overdue/export", params={"fmt": "xlsx"},
                                        headers=admin_headers()).content)).active
    assert ov.cell(1, 4).value == "滞留率" and ov.cell(2, 4).number_format == "0.0%"
    assert isinstance(ov.cell(2, 4).value, float) and ov.cell(ov.max_row, 1).value == "合计"
    assert c.get("/api/v1/stats/nonsense", headers=admin_headers()).status_code == 422
    # the page's period: 7, 30 or 90 days; anything else shows 30 with an error line
    page = c.get("/stats", params={"period": "7"}, headers=admin_headers()).text
    assert 'id="period-7" class="chip on"' in page and "近7天" in page
    page = c.get("/stats", params={"period": "365"}, headers=admin_headers())
    assert page.status_code == 200 and "统计期只能是 7/30/90 天，已显示 30 天。" in page.text
    assert 'id="period-30" class="chip on"' in page.text
    assert c.get("/api/v1/stats/volumes", params={"by": "planet"}, headers=admin_headers()).status_code == 422
    assert c.get("/api/v1/stats/volumes", params={"days": 0}, headers=admin_headers()).status_code == 422


def test_day_label():
    assert stats.day_label(0) == "1970-01-01"


def test_stats_page_opens_with_the_county_summary(cloud):
    factory = cloud.client.app.state.sessionmaker
    now = time.time()
    with factory() as session:
        seed_county(session, towns=6, villages=120, parcels_per_station_day=0.5, days=30, now=now)
        got = stats.summary(session, days=30, now=now)
        # counted here by hand, independently of the tables' rules
        villages = session.scalar(select(func.count()).select_from(Village))
        covered = session.scalar(select(func.count(func.distinct(Station.village_id))).where(
            Station.active.is_(True), Station.village_id.is_not(None)))
        midnight = stats.cst_day_start(now)
        assert (now - midnight) < 86400 and (midnight + 8 * 3600) % 86400 == 0
        monday = midnight - datetime.fromtimestamp(now, stats.CST).weekday() * 86400
        today = session.scalar(select(func.count()).select_from(Parcel).where(Parcel.created_at >= midnight))
        week = session.scalar(select(func.count()).select_from(Parcel).where(Parcel.created_at >= monday))
        overdue = session.scalar(select(func.count()).select_from(Parcel).where(Parcel.status == "overdue"))
        waiting = session.execute(select(func.count(), func.min(Parcel.deposited_at)).select_from(Parcel).join(
            Recipient, Recipient.phone == Parcel.phone).where(
            Recipient.door_help.is_(True), Parcel.direction == "inbound",
            Parcel.status.in_(("deposited", "notified")))).one()  # overdue: going back
        extra_n, extra_cents = session.execute(select(func.count(), func.sum(Parcel.fee_cents)).where(
            Parcel.direction == "inbound", Parcel.fee_cents > 0, Parcel.created_at >= now - 30 * 86400)).one()
    assert (got["villages"], got["covered"]) == (villages, covered) and 0 < covered < villages
    assert got["coverage"] == round(covered / villages, 4)
    assert (got["parcels_today"], got["parcels_week"]) == (today, week) and week >= today
    assert got["overdue_now"] == overdue
    assert got["door_waiting"] == waiting[0] > 0
    assert abs(got["door_oldest_days"] - (now - waiting[1]) / 86400) < 0.06
    assert got["extra_parcels"] == extra_n > 0 and abs(got["extra_yuan"] - extra_cents / 100) < 0.01

    page = cloud.client.get("/stats", headers=admin_headers()).text
    # the summary comes first, above the tables, with the numbers a county officer reads
    assert page.index('id="summary"') < page.index('id="coverage"')
    assert f"{covered}/{villages} 个村" in page and f"{got['coverage'] * 100:.1f}%" in page
    assert f"¥{got['extra_yuan']:.2f}" in page and f"最久已等 {duration(got['door_oldest_days'] * 86400, 'zh')}" in page
    # a wait in days and hours, never a fraction
    assert re.search(r"最久已等 \d+ (天|小时|分钟)( \d+ (小时|分钟))?<", page)
    en = cloud.client.get("/stats", params={"lang": "en", "period": "7"}, headers=admin_headers()).text
    assert "County at a glance" in en and f"{covered} of {villages} villages" in en and "Last 7 days" in en
