"""Few-shot learning by meta-learning (the course: other forms of transfer): a prototypical network (Snell et al. 2017) is
trained on episodes of the source classes only, then classifies target classes it has never seen from
K examples each. Compared, on the same episodes, with nearest prototypes on the supervised pre-trained
backbone's features, and on the fine-tuning runs' own pools and test set at the same K.

episodes: meta-training and episode scoring (torch); summary: tables and claims (no torch: the report stage
judges them)."""
