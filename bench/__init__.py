"""negbench: bench."""
