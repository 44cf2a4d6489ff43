"""`jincun bench cloud`'s PostgreSQL ceiling and ingest ratio, in a fast mode (a fraction of a second of upserts;
the figures themselves are measured by the bench, never asserted here)."""

from sqlalchemy import create_engine, text

from bench import pgceiling
from cloud import migrate


def test_ceiling_upserts_ledger_shaped_rows_and_leaves_no_table(pg_url):
    engine = create_engine(pg_url)
    try:
        migrate.upgrade(engine)  # the cloud's own schema: the ceiling table copies the events ledger's
        got = pgceiling.pg_ceiling(pg_url, batch=50, seconds=0.2, stations=3, lockers=("l1", "l2"), comps=12)
        assert got["rows"] >= 50 and got["rows"] % 50 == 0  # whole batches, every row held (checked inside)
        assert got["rows_per_s"] > 0 and got["seconds"] >= 0.2
        assert got["db_cpu_s"] is None or got["db_cpu_s"] >= 0  # None only for a server on another host
        with engine.connect() as conn:
            left = conn.execute(text("SELECT count(*) FROM pg_class WHERE relname LIKE :t"),
                                {"t": pgceiling.CEILING_TABLE + "%"}).scalar()
            events = conn.execute(text("SELECT count(*) FROM events")).scalar()
        assert left == 0 and events == 0  # the bench's own ledger is untouched
    finally:
        engine.dispose()


def test_ratio_fields_name_the_ceiling_and_the_goal():
    res = pgceiling.ratio_fields(12_000, [30_000, 50_000])
    assert res["pg_ceiling_rows_per_s"] == 40_000 and res["pg_ceiling_rounds"] == [30_000, 50_000]
    assert res["ingest_ratio"] == 0.3 and res["ingest_ratio_goal"] == 0.6 and res["ingest_ratio_met"] is False
    assert pgceiling.ratio_fields(30_000, [40_000])["ingest_ratio_met"] is True
    assert pgceiling.ratio_fields(1_000, [])["ingest_ratio"] is None
