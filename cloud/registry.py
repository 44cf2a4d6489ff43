"""The village registry: a county's towns, administrative villages and service points loaded from a file
into the cloud's database, updating in place on a re-import and refusing a bad file whole."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from .county_file import CountyFile, CountyFileError, Problem, check_points, check_villages, read_tables
from .crud import hash_key
from .errors import CloudError
from .models import District, Station, Town, Village

__all__ = ["CountyFileError", "ImportResult", "RegistryRefused", "RegistryUnavailable", "import_county",
           "read_county_file", "run_import"]


class RegistryRefused(CloudError):
    """The file has bad rows (all of them in `problems`) or clashes with the registry; nothing was imported."""

    def __init__(self, message: str, problems: list[Problem] | None = None, rejected_rows: int = 0) -> None:
        super().__init__(message)
        self.problems = problems or []
        self.rejected_rows = rejected_rows


class RegistryUnavailable(CloudError):
    """The database cannot be reached or written."""


@dataclass(frozen=True)
class ImportResult:
    """What an import did: towns and villages in the file, records created and records changed."""

    towns: int
    villages: int
    created: int
    updated: int
    rejected_rows: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"towns": self.towns, "villages": self.villages, "created": self.created, "updated": self.updated,
                "rejected_rows": self.rejected_rows}


def read_county_file(session: Session, path: Path, *, points_path: Path | None = None) -> CountyFile:
    """Read and check a registry file; the points may name villages already in the registry."""
    village_rows, point_rows = read_tables(path, points_path)
    out = CountyFile()
    out.villages = check_villages(village_rows, out.problems)
    if point_rows is not None:
        known = {code: town for code, town in session.execute(
            select(Village.code, Town.name).join(Town, Town.id == Village.town_id)
            .where(Village.code.is_not(None))).all() if code is not None}
        known.update({v.code: v.town for v in out.villages})
        towns = set(session.scalars(select(Town.name)).all()) | {v.town for v in out.villages}
        out.points = check_points(point_rows, out.problems, village_codes=known, towns=towns)
    return out


def _set(obj, **values) -> bool:
    """Set the attributes that differ; True if any did."""
    changed = False
    for name, value in values.items():
        if getattr(obj, name) != value:
            setattr(obj, name, value)
            changed = True
    return changed


class _Apply:
    """One import's writes, counting what it creates and changes."""

    def __init__(self, session: Session, now: float) -> None:
        self.session = session
        self.now = now
        self.created = 0
        self.updated = 0

    def count(self, created: bool, changed: bool) -> None:
        self.created += created
        self.updated += changed and not created

    def district(self, code: str, name: str | None) -> District:
        s = self.session
        row = s.scalar(select(District).where(District.code == code))
        if row is None and name:
            row = s.scalar(select(District).where(District.name == name))
        if row is None:
            row = District(name=name or f"区划{code[:6]}", code=code)
            s.add(row)
            s.flush()
            self.count(True, False)
            return row
        self.count(False, _set(row, code=code, **({"name": name} if name else {})))
        return row

    def towns(self, district: District, wanted: dict[str, str]) -> dict[str, Town]:
        """Town name -> row for the file's towns (name -> code), matched by code, then by name in the
        county, then by a name no county has claimed yet (a town made when a station was registered)."""
        s = self.session
        by_code = {t.code: t for t in s.scalars(select(Town).where(Town.code.in_(list(wanted.values())))).all()}
        out = {}
        for name, code in wanted.items():
            row = by_code.get(code) or s.scalar(select(Town).where(Town.district_id == district.id,
                                                                   Town.name == name)) \
                or s.scalar(select(Town).where(Town.district_id.is_(None), Town.name == name).limit(1))
            created = row is None
            if row is None:
                row = Town(name=name)
                s.add(row)
            changed = _set(row, name=name, code=code, district_id=district.id)
            s.flush()
            self.count(created, changed)
            out[name] = row
        return out

    def villages(self, cf: CountyFile, towns: dict[str, Town]) -> dict[str, Village]:
        """Village code -> row, matched by code, then by name in its town."""
        s = self.session
        by_code = {v.code: v for v in s.scalars(select(Village).where(Village.code.is_not(None))).all()}
        town_ids = [t.id for t in towns.values()]
        by_name = {(v.town_id, v.name): v for v in s.scalars(select(Village).where(Village.town_id.in_(town_ids)))}
        out = {}
        for r in cf.villages:
            town = towns[r.town]
            row = by_code.get(r.code) or by_name.get((town.id, r.name))
            created = row is None
            if row is None:
                row = Village(name=r.name)
                s.add(row)
            changed = _set(row, name=r.name, town_id=town.id, code=r.code, population=r.population,
                           distance_km=r.distance_km, lat=r.lat, lon=r.lon)
            self.count(created, changed)
            out[r.code] = row
        s.flush()
        return out

    def points(self, cf: CountyFile, district: District, villages: dict[str, Village]) -> None:
        """The stations of the three tiers, by id; an existing station keeps its key and active flag."""
        s = self.session
        codes = [p.village_code for p in cf.points if p.village_code and p.village_code not in villages]
        if codes:
            villages = {**villages, **{v.code: v for v in s.scalars(select(Village).where(Village.code.in_(codes)))
                                       if v.code is not None}}
        for p in cf.points:
            village = villages.get(p.village_code) if p.village_code else None
            town_id = None
            if village is None and p.town is not None:
                # the county's town of that name, else (a town of the registry only) the first of that name
                town = s.scalar(select(Town).where(Town.name == p.town, Town.district_id == district.id)) \
                    or s.scalar(select(Town).where(Town.name == p.town).order_by(Town.id).limit(1))
                assert town is not None  # the file's check found the town in the file or the registry
                town_id = town.id
            row = s.get(Station, p.id)
            created = row is None
            if row is None:
                # no gateway can sign in as it until its key is set: the key is drawn here and thrown away
                row = Station(id=p.id, api_key_hash=hash_key(secrets.token_urlsafe(32)), active=True,
                              created_at=self.now)
                s.add(row)
            changed = _set(row, name=p.name, kind=p.kind, village_id=village.id if village else None,
                           town_id=town_id, lat=p.lat, lon=p.lon)
            self.count(created, changed)
        s.flush()


def import_county(session: Session, path: Path, *, points_path: Path | None = None, county: str | None = None,
                  now: float | None = None) -> ImportResult:
    """Load a registry file into the session (the caller commits, or rolls back on an error).

    Raises RegistryRefused, naming every bad row, when the file has any; CountyFileError when it cannot
    be read at all."""
    if county is not None and not 0 < len(county) <= 64:
        raise RegistryRefused("the county's name must be 1-64 characters")
    cf = read_county_file(session, path, points_path=points_path)
    if cf.problems:
        n = cf.rejected_rows()
        raise RegistryRefused(f"{path.name} refused: {n} bad row{'s' if n != 1 else ''}, nothing imported",
                              cf.problems, n)
    wanted: dict[str, str] = {}
    for v in cf.villages:
        wanted.setdefault(v.town, v.town_code)
    work = _Apply(session, time.time() if now is None else now)
    try:
        code = cf.county_code
        assert code is not None  # a file without villages is refused with a problem above
        district = work.district(code, county)
        towns = work.towns(district, wanted)
        villages = work.villages(cf, towns)
        work.points(cf, district, villages)
    except IntegrityError as exc:
        session.rollback()
        detail = str(exc.orig).splitlines()[0] if exc.orig is not None else str(exc)
        raise RegistryRefused(f"{path.name} refused: it clashes with the registry ({detail}), nothing imported",
                              rejected_rows=0) from None
    return ImportResult(towns=len(wanted), villages=len(cf.villages), created=work.created, updated=work.updated)


def run_import(database_url: str, path: Path, *, points_path: Path | None = None, county: str | None = None,
               pg_options: str | None = None) -> ImportResult:
    """Bring the schema to head and import in one transaction."""
    from . import migrate
    from .storage import make_engine, make_sessionmaker

    for p in (path, points_path):
        if p is not None and not p.is_file():
            raise CountyFileError(f"no such file: {p}")
    engine = make_engine(database_url, **({"pg_options": pg_options} if pg_options is not None else {}))
    try:
        migrate.upgrade(engine)
        with make_sessionmaker(engine)() as session:
            result = import_county(session, path, points_path=points_path, county=county)
            session.commit()
        return result
    except OperationalError as exc:
        raise RegistryUnavailable(f"database {engine.url.render_as_string(hide_password=True)}: "
                                  f"{str(exc.orig).strip().splitlines()[0] if exc.orig else exc}") from None
    finally:
        engine.dispose()
