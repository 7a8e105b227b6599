"""What each reminder setting trades, measured per consumable by bench/consumables.py:
setting's risk -> (share of household-years that ran out, days of supply left when a delivery
arrived). Written by tools/reorder_figures.py; the consumables page shows it beside the choice.
Measured: 2026-12-02, seeds 1000 to 1999.
"""

HOUSEHOLDS = 1000  # simulated household-years per consumable
FIGURES = {
    "coffee_beans": {"0.001": (0.027, 8.2), "0.005": (0.034, 5.7), "0.02": (0.427, 2.9)},
    "descaler": {"0.001": (0.0, 55.0), "0.005": (0.0, 47.0), "0.02": (0.0, 39.4)},
    "detergent": {"0.001": (0.013, 13.8), "0.005": (0.034, 9.5), "0.02": (0.298, 5.3)},
    "rinse_aid": {"0.001": (0.0, 20.8), "0.005": (0.007, 13.1), "0.02": (0.101, 7.2)},
    "salt": {"0.001": (0.0, 21.7), "0.005": (0.002, 13.4), "0.02": (0.053, 7.5)},
}
