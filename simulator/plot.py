"""A picture of a simulated day from a run's result.json: events per hour, pickups and alarms.

`python -m simulator.plot var/runs/normal-day/result.json docs/img/sim_day.png`
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

FONT = "WenQuanYi Micro Hei"  # bilingual labels when the font is installed; matplotlib falls back otherwise
FONT_FILES = ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",)


def plot_day(result: dict, out: Path, *, extra: dict | None = None) -> Path:
    """Draw three panels sharing the simulated hour; `extra` (another result) adds its cloud arrivals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    for path in FONT_FILES:
        if Path(path).exists() and not any(f.name == FONT for f in font_manager.fontManager.ttflist):
            font_manager.fontManager.addfont(path)
    if any(f.name == FONT for f in font_manager.fontManager.ttflist):
        plt.rcParams["font.family"] = [FONT, "DejaVu Sans"]
    tl = result["timeline"]
    hours = sorted(int(h) for h in tl["hours"])
    rows = [tl["hours"][str(h)] for h in hours]
    kinds = sorted({k for r in rows for k in r["alarms"]})
    fig, (a1, a2, a3) = plt.subplots(3, 1, figsize=(10, 8), sharex=True,
                                     gridspec_kw={"height_ratios": [2, 1, 1.3]})
    x = [h + 0.5 for h in hours]  # a bar covers its hour
    a1.bar(x, [r["events"] for r in rows], width=0.8, color="#4c78a8", label="produced by lockers 柜控板产生")
    a1.plot(x, [r["in_cloud"] for r in rows], "o-", color="#f58518", label="reached the cloud 到达云端")
    for f in tl.get("faults", []):
        for ax in (a1, a2, a3):
            ax.axvspan(f["from_h"], max(f["to_h"], f["from_h"] + 0.08), color="#e45756", alpha=0.15)
        a1.annotate(f["kind"], (f["from_h"] + 0.03, a1.get_ylim()[1] * 0.92), fontsize=8, color="#b02020",
                    rotation=90, va="top")
    a1.set_ylabel("events / hour\n事件/小时")
    a1.legend(loc="upper left", fontsize=8)
    a1.set_title(f"{result['scenario']}: {result['stations']} stations, {result['controllers']} controllers "
                 f"({result['runtime']}) — lost {result['lost']}, duplicates {result['duplicates']}, "
                 f"late {result['late']}", fontsize=10)
    a2.bar(x, [r["pickups"] for r in rows], width=0.8, color="#54a24b")
    a2.set_ylabel("pickups / hour\n取件/小时")
    bottom = [0] * len(rows)
    palette = ["#e45756", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d", "#72b7b2", "#bab0ac"]
    for i, k in enumerate(kinds):
        vals = [r["alarms"].get(k, 0) for r in rows]
        a3.bar(x, vals, width=0.8, bottom=bottom, color=palette[i % len(palette)], label=k)
        bottom = [b + v for b, v in zip(bottom, vals)]
    a3.set_ylabel("alarms / hour\n告警/小时")
    if kinds:
        a3.legend(loc="upper left", fontsize=8, ncol=3)
    a3.set_xlabel("simulated hour of day 模拟时刻 (h; shaded: scheduled faults 阴影: 计划故障)")
    ticks = list(range(hours[0], hours[-1] + 2))
    a3.set_xticks(ticks)
    a3.set_xticklabels([f"{h % 24:02d}" for h in ticks], fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = argv or sys.argv[1:]
    res = json.loads(Path(argv[0]).read_text())
    print(plot_day(res, Path(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
