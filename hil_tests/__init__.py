"""The hardware-in-the-loop suite: one set of scenarios on simulated, MicroPython and real targets."""
