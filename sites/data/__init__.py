"""Site data: synthetic generators with the phenomena each method exists for."""
