"""The Flower ServerApp side: the scenario timeline, the grid view, evaluation and results."""
