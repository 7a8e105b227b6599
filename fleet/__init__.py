"""The fleet side of Wichtel: what the manufacturer's service computes from many devices."""
