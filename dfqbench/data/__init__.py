"""Data sets: the harness (never a method) reads them."""
