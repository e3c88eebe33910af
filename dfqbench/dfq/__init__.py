"""Shared building blocks of the DFQ methods (usable by any plugin, each tested on its own)."""
