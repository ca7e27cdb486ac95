"""Integration tier: the real external machinery on small inputs: Dask clusters, Prefect flows, DVC commands,
stage and CLI processes, processes killed mid-run."""
