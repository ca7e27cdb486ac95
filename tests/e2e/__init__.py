"""End-to-end tier: whole projects through `dvc repro` (the shared smoke repo), the README as a user types it,
remotes and the retrain flows."""
