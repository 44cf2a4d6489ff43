"""The sample county: one district hub, 12 towns, about 400 villages, with daily parcel volumes.

Every name is fictional and marked 示例 (example). The county is generated from a seed, so the same seed
always gives the same villages, sizes and volumes.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

TOWN_NAMES = ("青石", "柳河", "松岭", "白沙", "杏花", "石桥", "东坡", "西岭", "南湾", "北塘", "梨园", "竹溪")
VILLAGE_STEMS = ("张家", "李家", "王庄", "刘屯", "陈湾", "杨柳", "赵岗", "黄泥", "周庄", "吴堡", "徐营", "孙洼",
                 "马店", "朱坪", "胡集", "郭寨", "何庄", "高庙", "林场", "罗坝")
HUB = "示例县物流分拨中心 (example district hub)"
MIN_VOLUME, MAX_VOLUME = 3, 250


@dataclass(frozen=True)
class Village:
    """One village station: id, names, daily inbound parcels on a normal day, and lockers it needs."""

    id: str
    name: str
    town: str
    volume: int
    lockers: int


@dataclass(frozen=True)
class County:
    hub: str
    towns: tuple[str, ...]
    villages: tuple[Village, ...]

    @property
    def daily_volume(self) -> int:
        return sum(v.volume for v in self.villages)


def lockers_for(volume: int, comps: int = 12, dwell_days: float = 1.5) -> int:
    """Controllers a village needs so that parcels waiting about dwell_days fit, between 1 and 8."""
    return max(1, min(8, math.ceil(volume * dwell_days / comps)))


def make_county(seed: int = 2026, towns: int = 12, villages: int = 400) -> County:
    """A deterministic county. Volumes are log-normal (most villages small, a few large), clipped to 3..250."""
    rng = random.Random(seed)
    town_names = tuple(f"示例{TOWN_NAMES[i % len(TOWN_NAMES)]}镇" for i in range(towns))
    out = []
    for i in range(villages):
        town = town_names[i % towns]
        stem = VILLAGE_STEMS[rng.randrange(len(VILLAGE_STEMS))]
        vol = int(round(rng.lognormvariate(math.log(28), 0.85)))
        vol = max(MIN_VOLUME, min(MAX_VOLUME, vol))
        out.append(Village(id=f"v{i + 1:04d}", name=f"示例{stem}村{i + 1:03d}", town=town, volume=vol,
                           lockers=lockers_for(vol)))
    return County(hub=HUB, towns=town_names, villages=tuple(out))


def pick(county: County, n: int, *, seed: int, order: str = "spread") -> list[Village]:
    """n villages of the county: 'spread' samples across sizes, 'largest' takes the busiest."""
    vs = list(county.villages)
    if n >= len(vs):
        # the busiest villages run a second station (a shop at each end of the village)
        extra = sorted(vs, key=lambda v: -v.volume)[: n - len(vs)]
        return vs + [Village(id=f"{v.id}b", name=f"{v.name}二站", town=v.town, volume=max(MIN_VOLUME, v.volume // 2),
                             lockers=v.lockers) for v in extra]
    if order == "largest":
        return sorted(vs, key=lambda v: -v.volume)[:n]
    ranked = sorted(vs, key=lambda v: v.volume)
    step = len(ranked) / n
    rng = random.Random(seed)
    chosen: list[int] = []
    used: set[int] = set()
    for i in range(n):
        idx = min(len(ranked) - 1, int(i * step + rng.random() * step))
        while idx in used:  # two draws in neighbouring buckets met: take the next village up
            idx = (idx + 1) % len(ranked)
        used.add(idx)
        chosen.append(idx)
    return [ranked[i] for i in chosen]


# province 99 does not exist: the example county's 统计用区划代码 can never be a real county's
EXAMPLE_COUNTY_CODE = "999901"
POINT_KINDS = ("village_shop", "party_service_centre", "postal_point")


def registry_rows(county: County, *, seed: int = 2026, covered: float = 0.8) -> tuple[list[dict], list[dict]]:
    """The county as a village registry (docs/cloud.md, "Village registry"): the villages table and the
    points table (the district hub, a co-delivery station per town, a village point in about `covered` of
    the villages, with the village's id as the station id, as the simulator's stations have)."""
    rng = random.Random(f"registry-{seed}")
    hub_lat, hub_lon = 36.60, 118.10
    towns = {}
    for i, name in enumerate(county.towns):
        angle = 2 * math.pi * i / len(county.towns)
        towns[name] = (i + 1, round(hub_lat + 0.2 * math.cos(angle), 5), round(hub_lon + 0.25 * math.sin(angle), 5))
    villages, points = [], [{"id": "hub", "name": "示例县快递共同配送中心", "kind": "district_hub", "town": "",
                             "village_code": "", "lat": hub_lat, "lon": hub_lon}]
    for name, (n, lat, lon) in towns.items():
        points.append({"id": f"t{n:02d}", "name": f"{name}快递共同配送站", "kind": "town_station", "town": name,
                       "village_code": "", "lat": lat, "lon": lon})
    in_town: dict[str, int] = {}
    for v in county.villages:
        n, tlat, tlon = towns[v.town]
        in_town[v.town] = in_town.get(v.town, 0) + 1
        code = f"{EXAMPLE_COUNTY_CODE}{n:03d}{200 + in_town[v.town]:03d}"
        straight = rng.uniform(0.5, 20.0)
        angle = rng.uniform(0, 2 * math.pi)
        lat = round(tlat + straight * math.cos(angle) / 111.0, 5)
        lon = round(tlon + straight * math.sin(angle) / (111.0 * math.cos(math.radians(tlat))), 5)
        # the road winds: some 1.3 times the straight line; a tenth of the villages have no coordinates yet
        has_coords = rng.random() > 0.1
        villages.append({"code": code, "name": v.name, "town": v.town, "population": rng.randint(300, 4000),
                         "distance_km": round(straight * 1.3, 1), "lat": lat if has_coords else "",
                         "lon": lon if has_coords else ""})
        if rng.random() < covered:
            points.append({"id": v.id, "name": f"{v.name}服务站", "kind": rng.choice(POINT_KINDS), "town": v.town,
                           "village_code": code, "lat": "", "lon": ""})
    return villages, points
