"""The village registry: `jincun county import` on SQLite and PostgreSQL, its file formats, its refusals, and
the statistics that read it."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest
from cloudkit import STATION, admin_headers
from sqlalchemy import func, select

from cloud import migrate
from cloud.models import District, Parcel, Station, Town, Village
from cloud.registry import CountyFileError, RegistryRefused, import_county, run_import
from cloud.storage import make_engine, make_sessionmaker
from jincun.cli import main
from simulator.county import make_county, registry_rows

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
VILLAGES = EXAMPLES / "sample-county-villages.csv"
POINTS = EXAMPLES / "sample-county-points.csv"
ZH_HEADER = "区划代码,村名,乡镇,人口,距离公里,纬度,经度"


def _write(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def _counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as s:
            return {m.__tablename__: s.scalar(select(func.count()).select_from(m))
                    for m in (District, Town, Village, Station)}
    finally:
        engine.dispose()


def test_every_station_kind_has_its_names_in_the_file_format():
    from cloud.constants import STATION_KINDS
    from cloud.county_file import POINT_KINDS, VILLAGE_TIER, kind_of

    assert set(POINT_KINDS) == set(STATION_KINDS) and set(VILLAGE_TIER) < set(STATION_KINDS)
    assert [kind_of(n) for n in ("党群服务中心", "村邮站", " Village_Shop ", "镇级共配站", "区级中心", "菜市场")] == [
        "party_service_centre", "postal_point", "village_shop", "town_station", "district_hub", None]


def test_example_files_are_the_sample_county():
    """The shipped example is the simulator's sample county, written out: it cannot drift from it."""
    villages, points = registry_rows(make_county(2026))
    for path, rows in ((VILLAGES, villages), (POINTS, points)):
        with path.open(encoding="utf-8", newline="") as f:
            assert list(csv.DictReader(f)) == [{k: str(v) for k, v in r.items()} for r in rows]


def test_import_and_reimport_in_place(db_url, tmp_path):
    first = run_import(db_url, VILLAGES, points_path=POINTS, county="示例县")
    assert first.as_dict() == {"towns": 12, "villages": 400, "created": 1 + 12 + 400 + 335, "updated": 0,
                               "rejected_rows": 0}
    assert _counts(db_url) == {"districts": 1, "towns": 12, "villages": 400, "stations": 335}
    # the same file again changes nothing
    assert run_import(db_url, VILLAGES, points_path=POINTS).as_dict()["created"] == 0
    # a corrected population and a renamed village (same code) are updated in place
    lines = VILLAGES.read_text(encoding="utf-8").splitlines()
    code, name, town, _pop, *rest = lines[1].split(",")
    lines[1] = ",".join([code, name + "新", town, "4321", *rest])
    again = run_import(db_url, _write(tmp_path / "v.csv", lines), points_path=POINTS)
    assert (again.created, again.updated, again.villages) == (0, 1, 400)
    assert _counts(db_url) == {"districts": 1, "towns": 12, "villages": 400, "stations": 335}
    engine = make_engine(db_url)
    try:
        with make_sessionmaker(engine)() as s:
            v = s.scalar(select(Village).where(Village.code == code))
            assert (v.name, v.population) == (name + "新", 4321)
            hub = s.get(Station, "hub")
            assert (hub.kind, hub.village_id, hub.town_id) == ("district_hub", None, None)
            t01 = s.get(Station, "t01")
            assert t01.kind == "town_station" and s.get(Town, t01.town_id).code == "999901001000"
            with POINTS.open(encoding="utf-8") as f:
                row = next(r for r in csv.DictReader(f) if r["village_code"])
            point = s.get(Station, row["id"])
            assert point.kind == row["kind"] and s.get(Village, point.village_id).code == row["village_code"]
    finally:
        engine.dispose()


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_chinese_headers_in_every_encoding(tmp_path, encoding):
    path = _write(tmp_path / "v.csv", [ZH_HEADER, "370305101201,西村,凤凰镇,1200,12.5,36.8,118.3",
                                       "370305101202,东村,凤凰镇,800,3,,", "370305102201,南村,朱台镇,950,7.25,,"],
                  encoding)
    url = f"sqlite:///{tmp_path}/c.db"
    assert run_import(url, path, county="临淄区").as_dict() == {
        "towns": 2, "villages": 3, "created": 1 + 2 + 3, "updated": 0, "rejected_rows": 0}
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as s:
            west = s.scalar(select(Village).where(Village.name == "西村"))
            assert (west.code, west.population, west.distance_km, west.lat, west.lon) == \
                ("370305101201", 1200, 12.5, 36.8, 118.3)
            assert s.get(Town, west.town_id).code == "370305101000"
            assert s.scalar(select(District.code)) == "370305000000"
    finally:
        engine.dispose()


def test_xlsx_with_villages_and_points_sheets(tmp_path):
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "村"
    ws.append(["临淄区行政村名录（2024年）"])  # a title row above the header, as such lists have
    ws.append(ZH_HEADER.split(","))
    ws.append([370305101201, "西村", "凤凰镇", 1200, 12.5, None, None])  # a code typed as a number
    ws.append(["370305101202", "东村", "凤凰镇", 800.0, 3, 36.81, 118.32])
    ps = wb.create_sheet("站点")
    ps.append(["站点编号", "站点名称", "类型", "乡镇", "区划代码", "纬度", "经度"])
    ps.append(["lz-hub", "临淄区快递共同配送中心", "区级中心", None, None, 36.82, 118.31])
    ps.append(["lz-fh", "凤凰镇快递共同配送站", "镇级快递共同配送站", "凤凰镇", None, None, None])
    ps.append(["lz-xc", "西村党群服务中心", "党群服务中心", None, "370305101201", None, None])
    wb.save(tmp_path / "county.xlsx")
    url = f"sqlite:///{tmp_path}/c.db"
    result = run_import(url, tmp_path / "county.xlsx")
    assert (result.towns, result.villages, result.created) == (1, 2, 1 + 1 + 2 + 3)
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as s:
            kinds = dict(s.execute(select(Station.id, Station.kind)).all())
            assert kinds == {"lz-hub": "district_hub", "lz-fh": "town_station", "lz-xc": "party_service_centre"}
            assert s.get(Village, s.get(Station, "lz-xc").village_id).name == "西村"
    finally:
        engine.dispose()


def test_bad_file_is_refused_whole_with_every_bad_row(db_url, tmp_path):
    run_import(db_url, _write(tmp_path / "ok.csv", [ZH_HEADER, "370305101201,西村,凤凰镇,1200,12.5,,"]))
    before = _counts(db_url)
    bad = _write(tmp_path / "bad.csv", [
        ZH_HEADER,
        "370305101201,西村,凤凰镇,1300,12.5,,",          # good (an update), but the file is refused
        "370305101202,东村,凤凰镇,很多,3,,",              # row 3: population
        "37030510120,短村,凤凰镇,100,3,,",                # row 4: code
        "370305101204,北村,凤凰镇,100,3,118.3,36.8",      # row 5: lat/lon swapped
        "",
        "370305101201,重村,凤凰镇,100,3,,",              # row 7: repeated code
        "370305102205,南村,凤凰镇,100,-2,,",             # row 8: town part, distance
        "3.70305E+11,科村,凤凰镇,100,2,,",               # row 9: a code Excel wrote in scientific notation
    ], "gb18030")
    with pytest.raises(RegistryRefused) as info:
        run_import(db_url, bad)
    named = {(p.row, p.column) for p in info.value.problems}
    assert named == {(3, "人口"), (4, "区划代码"), (5, "纬度"), (5, "经度"), (7, "区划代码"), (8, "区划代码"),
                     (8, "距离公里"), (9, "区划代码")}
    assert info.value.rejected_rows == 6
    assert "scientific notation" in next(p.reason for p in info.value.problems if p.row == 9)
    assert all(p.reason for p in info.value.problems)
    assert _counts(db_url) == before
    engine = make_engine(db_url)
    try:
        with make_sessionmaker(engine)() as s:
            assert s.scalar(select(Village.population).where(Village.code == "370305101201")) == 1200
    finally:
        engine.dispose()


def test_bad_points_are_named(tmp_path):
    villages = _write(tmp_path / "v.csv", [ZH_HEADER, "370305101201,西村,凤凰镇,1200,12.5,,"])
    points = _write(tmp_path / "p.csv", [
        "id,name,kind,town,village_code,lat,lon",
        "hub,中心,district_hub,凤凰镇,,,",                 # row 2: a hub has no town
        "t1,凤凰站,town_station,,,,",                     # row 3: town missing
        "p1,小店,village_shop,,370305101299,,",           # row 4: unknown village
        "p2,小店,grocery,,370305101201,,",                # row 5: unknown kind
        "P3,小店,商超,,370305101201,,",                   # row 6: id not lower case
        "p4,邮站,村邮站,凤凰镇,370305101201,,",            # good
    ])
    engine = make_engine(f"sqlite:///{tmp_path}/c.db")
    try:
        migrate.upgrade(engine)
        with make_sessionmaker(engine)() as s:
            with pytest.raises(RegistryRefused) as info:
                import_county(s, villages, points_path=points)
    finally:
        engine.dispose()
    assert {(p.table, p.row, p.column) for p in info.value.problems} == {
        ("points", 2, "town"), ("points", 3, "town"), ("points", 4, "village_code"), ("points", 5, "kind"),
        ("points", 6, "id")}


def test_cli_prints_json_last_and_refuses_with_one_error_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("JINCUN_DATABASE_URL", f"sqlite:///{tmp_path}/c.db")
    good = _write(tmp_path / "v.csv", [ZH_HEADER, "370305101201,西村,凤凰镇,1200,12.5,,"], "utf-8-sig")
    assert main(["county", "import", str(good), "--county", "临淄区"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert json.loads(out[-1]) == {"towns": 1, "villages": 1, "created": 3, "updated": 0, "rejected_rows": 0}

    bad = _write(tmp_path / "b.csv", [ZH_HEADER, "370305101201,西村,凤凰镇,x,12.5,,", "x,东村,凤凰镇,1,1,,"])
    assert main(["county", "import", str(bad)]) == 2
    captured = capsys.readouterr()
    assert json.loads(captured.out.strip().splitlines()[-1]) == {
        "towns": 0, "villages": 0, "created": 0, "updated": 0, "rejected_rows": 2}
    err = captured.err.strip().splitlines()
    assert err[-1] == "jincun: error: b.csv refused: 2 bad rows, nothing imported"
    assert "villages row 2, 人口" in err[0] and "villages row 3, 区划代码" in err[1]
    assert "Traceback" not in captured.err

    assert main(["county", "import", str(tmp_path / "none.csv")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"jincun: error: no such file: {tmp_path / 'none.csv'}"]


def test_coverage_and_subsidy_use_the_registry(cloud, tmp_path):
    """Villages without a station lower the coverage; the subsidy ranking orders by distance x population
    / (1 + parcels a day). The fixture's stations stand in 冯家村 of 临泽镇, which the import adopts."""
    c = cloud.client
    cov = {r["town"]: r for r in c.get("/api/v1/stats/coverage", headers=admin_headers()).json()}
    assert cov["临泽镇"]["coverage"] == 1.0
    path = _write(tmp_path / "v.csv", [
        ZH_HEADER,
        "370305101201,冯家村,临泽镇,2000,40,,",   # 80 with no parcels; 2 parcels a day: 26.7
        "370305101202,远村,临泽镇,500,30,,",      # 15
        "370305101203,大村,临泽镇,3000,10,,",     # 30
        "370305101204,中村,临泽镇,1000,20,,",     # 20
    ])
    with c.app.state.sessionmaker() as s:
        result = import_county(s, path, county="临淄区")
        s.commit()
    assert (result.created, result.updated) == (1 + 3, 2)  # the district and 3 villages; the town and 冯家村 adopted
    cov = {r["town"]: r for r in c.get("/api/v1/stats/coverage", headers=admin_headers()).json()}
    assert (cov["临泽镇"]["villages"], cov["临泽镇"]["covered"], cov["临泽镇"]["coverage"]) == (4, 1, 0.25)

    ranked = c.get("/api/v1/stats/subsidy", headers=admin_headers()).json()
    assert [r["village"] for r in ranked] == ["冯家村", "大村", "中村", "远村"]
    assert [r["score"] for r in ranked] == [80.0, 30.0, 20.0, 15.0]
    assert ranked[1]["population"] == 3000 and not ranked[1]["covered"]

    now = time.time()
    with c.app.state.sessionmaker() as s:
        s.add_all(Parcel(ref=f"p-{i}", station_id=STATION, direction="inbound", status="picked_up",
                         created_at=now - i * 3600, updated_at=now) for i in range(60))
        s.commit()
    ranked = c.get("/api/v1/stats/subsidy", params={"days": 30}, headers=admin_headers()).json()
    assert [r["village"] for r in ranked] == ["大村", "冯家村", "中村", "远村"]
    assert ranked[1]["parcels_per_day"] == 2.0 and ranked[1]["score"] == round(80 / 3, 3)


def test_statistics_place_parcels_by_the_registry(cloud, tmp_path):
    """A town co-delivery station's parcels count under its town; the door-to-door dispatch list names the
    station's village and its distance from the registry."""
    from cloud.models import Recipient

    c = cloud.client
    villages = _write(tmp_path / "v.csv", [ZH_HEADER, "370305101201,冯家村,临泽镇,900,12.5,,"])
    points = _write(tmp_path / "p.csv", ["站点编号,站点名称,类型,乡镇", "lz-town,临泽镇快递共同配送站,镇级共配站,临泽镇"])
    now = time.time()
    with c.app.state.sessionmaker() as s:
        import_county(s, villages, points_path=points)
        s.add(Recipient(phone="13800000001", consent="granted", door_help=True, updated_at=now))
        s.add_all([Parcel(ref="p-town", station_id="lz-town", direction="inbound", status="picked_up",
                          created_at=now - 60, updated_at=now),
                   Parcel(ref="p-door", station_id=STATION, direction="inbound", status="deposited",
                          phone="13800000001", created_at=now - 7200, deposited_at=now - 7200, updated_at=now)])
        s.commit()
    vols = c.get("/api/v1/stats/volumes", params={"by": "town"}, headers=admin_headers()).json()
    assert sum(r["inbound"] for r in vols if r["town"] == "临泽镇") == 2
    assert not [r for r in vols if r["town"] == "—"]
    door = c.get("/api/v1/stats/door_help", headers=admin_headers()).json()
    assert [(r["station_id"], r["village"], r["distance_km"], r["waiting"]) for r in door] == [
        (STATION, "冯家村", 12.5, 1)]
    # the town station's dispatch: its village points' inbound parcels (not its own), and their distance
    dispatch = c.get("/api/v1/stats/dispatch", params={"days": 10}, headers=admin_headers()).json()
    assert dispatch == [{"town": "临泽镇", "town_station": "临泽镇快递共同配送站", "villages": 1, "served": 1,
                         "parcels_per_day": 0.1, "farthest_km": 12.5, "mean_km": 12.5}]
    page = c.get("/stats", headers=admin_headers())
    assert page.status_code == 200 and "临泽镇快递共同配送站" in page.text and 'id="dispatch"' in page.text


def test_import_adopts_places_made_by_registering_stations(cloud):
    """A station registered with village and town names (as the simulator's are) keeps its village: the
    import gives that village its code and figures instead of making a second one."""
    with POINTS.open(encoding="utf-8") as f:
        point = next(r for r in csv.DictReader(f) if r["village_code"])
    with VILLAGES.open(encoding="utf-8") as f:
        village = next(r for r in csv.DictReader(f) if r["code"] == point["village_code"])
    resp = cloud.client.post("/api/v1/admin/stations", headers=admin_headers(), json={
        "id": point["id"], "name": "旧名", "kind": "village_shop", "village": village["name"],
        "town": village["town"], "api_key": "key-of-the-sample-station-0001"})
    assert resp.status_code == 201, resp.text
    with cloud.client.app.state.sessionmaker() as s:
        before = s.get(Station, point["id"]).village_id
        result = import_county(s, VILLAGES, points_path=POINTS, county="示例县")
        s.commit()
        station = s.get(Station, point["id"])
        assert station.village_id == before and station.name == point["name"] and station.kind == point["kind"]
        assert s.get(Village, before).code == village["code"]
        assert s.scalar(select(func.count()).select_from(Village).where(Village.name == village["name"])) == 1
        assert s.scalar(select(func.count()).select_from(Village)) == 401  # the fixture's 冯家村 and the 400
    assert (result.villages, result.updated) == (400, 3)  # the station, its village and its town adopted


def test_rows_are_numbered_as_the_sheet_shows_them(tmp_path):
    """With a title row above the header, a bad row is still named by its line in the sheet; a file too
    large to be a county's list, or of another kind, is refused before anything is read."""
    path = _write(tmp_path / "v.csv", ["某县行政村名录,,,,,,", ZH_HEADER, "370305101201,西村,凤凰镇,1200,12.5,,",
                                       "370305101202,东村,凤凰镇,800,远,,"])
    engine = make_engine(f"sqlite:///{tmp_path}/c.db")
    try:
        migrate.upgrade(engine)
        with make_sessionmaker(engine)() as s:
            with pytest.raises(RegistryRefused) as info:
                import_county(s, path)
    finally:
        engine.dispose()
    assert [(p.row, p.column) for p in info.value.problems] == [(4, "距离公里")]

    missing = _write(tmp_path / "m.csv", ["区划代码,村名,乡镇,人口", "370305101201,西村,凤凰镇,1200"])
    with pytest.raises(RegistryRefused) as info:
        run_import(f"sqlite:///{tmp_path}/c.db", missing)
    assert [(p.row, p.column, p.reason) for p in info.value.problems] == [
        (1, "距离公里", "missing from the header (or distance_km)")]

    big = tmp_path / "big.csv"
    with big.open("wb") as f:
        f.truncate(21 * 1024 * 1024)
    with pytest.raises(CountyFileError, match="larger than 20 MB"):
        run_import(f"sqlite:///{tmp_path}/c.db", big)
    with pytest.raises(CountyFileError, match=r"\.csv or \.xlsx"):
        run_import(f"sqlite:///{tmp_path}/c.db", _write(tmp_path / "v.xls", ["x"]))


def test_station_registered_after_the_import_lands_in_the_registry_village(cloud, tmp_path):
    c = cloud.client
    villages = _write(tmp_path / "v.csv", [ZH_HEADER, "370305101201,西村,凤凰镇,1200,12.5,,",
                                           "370305101202,东村,凤凰镇,800,3,,"])
    points = _write(tmp_path / "p.csv", ["站点编号,站点名称,类型,乡镇", "fh-town,凤凰镇快递共同配送站,镇级共配站,凤凰镇"])
    with c.app.state.sessionmaker() as s:
        import_county(s, villages, points_path=points)
        s.commit()
    resp = c.post("/api/v1/admin/stations", headers=admin_headers(), json={
        "id": "xicun", "name": "西村便民店", "kind": "village_shop", "village": "西村", "town": "凤凰镇",
        "api_key": "key-of-the-xicun-station-01"})
    assert resp.status_code == 201, resp.text
    cov = {r["town"]: r for r in c.get("/api/v1/stats/coverage", headers=admin_headers()).json()}
    assert (cov["凤凰镇"]["villages"], cov["凤凰镇"]["covered"]) == (2, 1)
    listed = {s["id"]: s for s in c.get("/api/v1/stations", headers=admin_headers()).json()}
    assert (listed["xicun"]["village"], listed["xicun"]["town"]) == ("西村", "凤凰镇")
    assert (listed["fh-town"]["village"], listed["fh-town"]["town"]) == (None, "凤凰镇")
