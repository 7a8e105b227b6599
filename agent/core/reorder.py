"""The user's reorder choice for one consumable: off, remind or share, the product and
retailer they chose, their risk of running out and their own delivery time.

Checked here when it is made (local page, command line) and when it is restored.
"""

from agent.core.errors import ConfigError

# What the user wants done when a reorder is due. Default: remind, locally.
OFF = "off"
REMIND = "remind"
SHARE = "share"
CHOICES = (OFF, REMIND, SHARE)
# The chance of running out before a delivery arrives that the local page offers: early
# (the default: with it, running out at all in a year stays rare), balanced, late.
RISKS = (0.001, 0.005, 0.02)


class ReorderChoice:
    """The user's decision for one consumable: off, remind (local notice only) or share
    (an upstream reorder suggestion, sent only with consent), with the product and the
    retailer the user chose. Never preset to a brand."""

    def __init__(self, mode: str = REMIND, product: str = "", retailer: str = "", risk: float = RISKS[0],
                 lead_time_days: float | None = None) -> None:  # fmt: skip
        if mode not in CHOICES:
            raise ConfigError("reorder choice " + repr(mode) + " is not one of " + ", ".join(CHOICES))
        if not 0.001 <= risk <= 0.5:
            raise ConfigError("risk of running out " + repr(risk) + " must be from 0.001 to 0.5")
        if lead_time_days is not None and not 0 <= lead_time_days <= 60:
            raise ConfigError("lead time " + repr(lead_time_days) + " days must be from 0 to 60")
        if len(product) > 80 or len(retailer) > 80:
            raise ConfigError("product and retailer names are at most 80 characters")
        self.mode = mode
        self.product = product
        self.retailer = retailer
        self.risk = risk
        self.lead_time_days = lead_time_days

    def as_dict(self) -> dict:
        return {"mode": self.mode, "product": self.product, "retailer": self.retailer, "risk": self.risk,
                "lead_time_days": self.lead_time_days}  # fmt: skip
