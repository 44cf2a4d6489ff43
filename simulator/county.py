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
