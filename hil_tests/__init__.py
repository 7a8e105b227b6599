"""Hardware-in-the-loop tests: one scenario set run on the sim, micropython and serial targets
(hil_tests/README.md), and the emulated boards and buses they need."""
