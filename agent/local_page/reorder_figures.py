"""What each reminder setting trades, measured per consumable (bench/consumables.py):
setting's risk -> (share of household-years that ran out, days of supply left when a delivery
arrived). Written by tools/reorder_figures.py; the consumables page shows it beside the choice.
"""

HOUSEHOLDS = 0  # simulated household-years per consumable
FIGURES: dict = {}
