"""Unit tier: one module or function at a time, in this process (with at most a short stage or CLI
subprocess); `make test-fast`, ≤ 5 minutes on 2 cores."""
