"""Online bin packing (FunSearch's protocol). See problems/README.md."""
from problems.bin_packing.problem import BinPacking
from problems.bin_packing.sets import load_set, weibull_set

__all__ = ["BinPacking", "load_set", "weibull_set"]
