"""Entry point, simulation engine start-up and reports."""
