"""The training machinery every experiment shares: the engine, checkpoints, augmentation, objectives, convergence stopping, the frozen-feature cache and the transfer recipes."""
