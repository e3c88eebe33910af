"""Model architectures dfqbench defines itself (the compact nets of the digits suite)."""
