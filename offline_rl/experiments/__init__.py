"""Experiments on the simulator: transfer to new segments."""
