"""How often the default pack's lot rules flag competitive lots, and how often rigged ones.

Competitive lots: independent bids around a budget, log-normal with spread
sigma, 3 to 7 bids (prices to the yuan). Rigged lots: the winner, and cover
bids placed 2-6% above it and pressed together (spread 0.2-1%), as the
literature describes them (Imhof 2017). Printed: the share of each kind that
``proc_bid_screens`` (cv, rd, the minimum number of bids) flags at the
thresholds of rules/params.yaml, and the share ``proc_bidder_collusion``'s
price tests (identical bids, bids at regular steps) flag.

    python benchmarks/bench_screens.py [--lots 50000] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.core.bidscreens import screen, steps, ties  # noqa: E402
from monitor.packs.rulefiles import default_rules_dir, load_pack  # noqa: E402


def competitive(rng: random.Random, sigma: float) -> list[float]:
    budget = 10 ** rng.uniform(5.5, 7.5)
    return [float(round(budget * rng.lognormvariate(0, sigma))) for _ in range(rng.randint(3, 7))]


def rigged(rng: random.Random) -> list[float]:
    winner = round(10 ** rng.uniform(5.5, 7.5))
    gap, spread = rng.uniform(0.02, 0.06), rng.uniform(0.002, 0.01)
    covers = [float(round(winner * (1 + gap + rng.uniform(0, spread)))) for _ in range(rng.randint(4, 6))]
    return [float(winner)] + covers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lots", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    params = {name: p.default for name, p in load_pack(default_rules_dir()).params.items()}
    cv_max, rd_min, min_bids = params["bid_cv_max"], params["bid_rd_min"], params["bid_screen_min_bids"]
    step_min = params["bid_steps_min"]
    rng = random.Random(args.seed)

    def screened(bids: list[float]) -> bool:
        return len(bids) >= min_bids and screen("cv", bids) < cv_max and screen("rd", bids) > rd_min

    def priced_together(bids: list[float]) -> bool:
        return ties(bids) >= 2 or steps(bids) >= step_min

    print(f"thresholds: cv < {cv_max}, rd > {rd_min}, at least {min_bids:.0f} bids; steps >= {step_min:.0f}")
    print(f"{'lots':<28}{'n':>8}{'judged':>9}{'screens flag':>14}{'price tests flag':>18}")
    for label, make in [("competitive, sigma 5%", lambda: competitive(rng, 0.05)),
                        ("competitive, sigma 8%", lambda: competitive(rng, 0.08)),
                        ("competitive, sigma 12%", lambda: competitive(rng, 0.12)),
                        ("rigged (winner + covers)", lambda: rigged(rng))]:
        lots = [make() for _ in range(args.lots)]
        judged = sum(len(b) >= min_bids for b in lots)
        flagged = sum(map(screened, lots))
        together = sum(map(priced_together, lots))
        print(f"{label:<28}{len(lots):>8}{judged / len(lots):>9.1%}{flagged / len(lots):>14.2%}{together / len(lots):>18.3%}")


if __name__ == "__main__":
    main()
