"""One folder (or module) per experiment; each imports analysis, core, models, data and system, never another experiment."""
