"""Fine-tune on target task B from the pre-trained backbones: the pool-size sweep over strategies and backbones,
and the per-strategy training rules."""
