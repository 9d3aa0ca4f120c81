"""Renderers: they read reports and stored results, never ELF."""
