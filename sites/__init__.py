"""What runs inside a hospital: its data, its networks, its tasks and the Flower ClientApp."""
