"""The hardware-in-the-loop suite: one scenario set, run on the sim, micropython and serial targets."""
