"""The syntactic hash: formatting, comments, docstrings and local names do not count."""
from evo.hashing import syntactic_hash

BASE = """import numpy as np

def priority(item, bins):
    gap = bins - item
    return -gap
"""


def test_formatting_comments_docstrings_and_local_names_do_not_count():
    variant = '''import numpy as np
def priority(size, capacities):
    """Best fit."""
    # the room left after placing the item
    room   =   capacities - size
    return -room
'''
    assert syntactic_hash(variant) == syntactic_hash(BASE)


def test_different_code_hashes_differently():
    assert syntactic_hash(BASE.replace("-gap", "gap")) != syntactic_hash(BASE)
    assert syntactic_hash(BASE.replace("np", "math")) != syntactic_hash(BASE)
