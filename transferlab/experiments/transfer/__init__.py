"""Pre-train on source task A, fine-tune on target task B: the pool-size sweep over strategies and backbones."""
