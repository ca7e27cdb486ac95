"""Transferability scores (LogME, LEEP, …) over candidate backbones, and whether they rank the backbones as fine-tuning does."""
