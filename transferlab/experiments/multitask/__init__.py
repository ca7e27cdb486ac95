"""Multi-task learning on traffic-like scenes."""
