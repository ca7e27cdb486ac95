"""The process and its plumbing: runtime context (device, precision, threads, cluster), the one door to parallelism, malloc tuning, progress, stage timings, file io."""
