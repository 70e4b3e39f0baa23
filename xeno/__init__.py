"""Xeno-learning science: optics, species tables, simulator, projections, models, training."""
