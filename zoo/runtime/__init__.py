"""Where and how a process computes: devices, memory estimates, distributed primitives, random streams."""
