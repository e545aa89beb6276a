"""Time 1,000,000 simulated draws of the demo series (one core) and print draws/s.

    python bench/simulate_bench.py [players] [draws_per_player]

The target in issue 4 is < 10 s for 10⁶ draws; this is a measurement, not a test.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from economy.config import parse_game_config
from economy.simulate import simulate

EXAMPLE = Path(__file__).parents[1] / "gameserver" / "examples" / "squirrel-omg.json"


def main() -> None:
    players = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    per_player = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    config = parse_game_config(json.loads(EXAMPLE.read_text()))
    series = config.boxes.series["forest_friends"]
    start = time.perf_counter()
    result = simulate(series, players, per_player, seed="bench", batch=10)
    elapsed = time.perf_counter() - start
    print(f"{result.draws} draws in {elapsed:.2f} s: {result.draws / elapsed:,.0f} draws/s")
    print(json.dumps(result.to_json()["sold_out_at_draw"]))


if __name__ == "__main__":
    main()
