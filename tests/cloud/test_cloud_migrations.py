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
