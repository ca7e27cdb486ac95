"""Multi-task learning on traffic-like scenes (DESIGN.md idea 4)."""
