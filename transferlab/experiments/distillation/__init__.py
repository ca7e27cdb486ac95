"""Knowledge distillation (the course: other forms of transfer): a small student learns from a fine-tuned teacher's softened
outputs, against the same student on hard labels, at several amounts of transfer data, and with one
class missing from the transfer data entirely (Hinton et al. 2015, the MNIST students without 3s).

students: the training (torch); summary: tables and claims from the runs (no torch: the report stage judges them)."""
