"""Alembic migrations build the schema on SQLite and PostgreSQL and match the ORM models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select

from cloud import migrate
from cloud.models import Base, Carrier
from cloud.storage import make_engine, make_sessionmaker

TABLES = {"districts", "towns", "villages", "stations", "lockers", "compartments", "carriers", "parcels",
          "parcel_events", "pickup_codes", "events", "dead_letters", "alarms", "telemetry", "notifications",
          "users", "api_clients", "couriers", "recipients", "commands", "rate_hits", "leases", "audit_log",
          "signoff_flags", "webhook_deliveries", "otp_codes", "telemetry_points"}


def test_upgrade_creates_schema_and_seeds_carriers(db_url):
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine)
        insp = inspect(engine)
        assert TABLES <= set(insp.get_table_names())
        uniques = {u["name"]: u["column_names"] for u in insp.get_unique_constraints("events")}
        assert uniques["uq_events_item"] == ["station_id", "src", "boot", "seq", "kind", "month"]
        with make_sessionmaker(engine)() as session:
            codes = set(session.scalars(select(Carrier.code)).all())
            assert codes == {"EMS", "SF", "ZTO", "YTO", "STO", "YUNDA", "JT", "JD"}
            assert session.get(Carrier, "SF").name_zh == "顺丰速运"
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        assert diff == [], f"models and migrations differ: {diff}"
        # running again is a no-op; down to base and up again works (batch mode on SQLite)
        migrate.upgrade(engine)
        migrate.downgrade(engine, "base")
        assert not TABLES & set(inspect(engine).get_table_names())
        migrate.upgrade(engine)
        assert TABLES <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_registry_migration_keeps_places(db_url):
    """0009 adds the registry's codes and coordinates to existing places, and takes them away again."""
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine, "0008")
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO towns (id, name) VALUES (1, '临泽镇')")
            conn.exec_driver_sql("INSERT INTO villages (id, name, town_id, distance_km, population) "
                                 "VALUES (1, '冯家村', 1, 12.5, 900)")
            # rows that refer to the tables the migration rebuilds on SQLite
            conn.exec_driver_sql("INSERT INTO stations (id, name, kind, village_id, api_key_hash, active, "
                                 "created_at) VALUES ('s1', '冯家村便民店', 'village_shop', 1, 'h', true, 0)")
            conn.exec_driver_sql("INSERT INTO lockers (station_id, id, online) VALUES ('s1', 'l1', 'unknown')")
        migrate.upgrade(engine)
        with engine.begin() as conn:
            row = conn.exec_driver_sql("SELECT name, code, lat, distance_km FROM villages").one()
            assert tuple(row) == ("冯家村", None, None, 12.5)
            conn.exec_driver_sql("UPDATE villages SET code = '370305101201', lat = 36.8, lon = 118.3")
        uniques = {u["name"] for u in inspect(engine).get_unique_constraints("villages")}
        assert "uq_villages_code" in uniques
        migrate.downgrade(engine, "0008")
        assert "code" not in {c["name"] for c in inspect(engine).get_columns("villages")}
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT name, population FROM villages").one() == ("冯家村", 900)
            assert conn.exec_driver_sql("SELECT village_id FROM stations").scalar() == 1
            if engine.dialect.name == "sqlite":
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1, "foreign keys left off"
    finally:
        engine.dispose()
