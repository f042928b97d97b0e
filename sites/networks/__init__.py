"""Networks the tasks build (one per file), written from MONAI's building blocks."""
