"""Constructive TSP (EoH's protocol). See problems/README.md."""
from problems.tsp.problem import TSP
from problems.tsp.sets import load_set, random_set, tour_length

__all__ = ["TSP", "load_set", "random_set", "tour_length"]
