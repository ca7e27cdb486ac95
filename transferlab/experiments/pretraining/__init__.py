"""Pre-training on the source task A: the backbone every transfer experiment starts from, and the variants the
source-size curve and its permuted-pixel control train (a DVC stage of its own, apart from fine-tuning)."""
