"""Datasets: sources and loaders, the prepared (safetensors) sets, builders (glyphs, canvases, scenes, audio/), the GX gate and drift."""
