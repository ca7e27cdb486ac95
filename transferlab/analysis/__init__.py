"""Statistics over finished runs: CIs, claims and their verdicts, learning curves, extrapolation, the source-size curve, and the sweep's run-table schema."""
