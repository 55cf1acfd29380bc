"""The syntactic hash: what does not change behaviour does not count; what might, does.

Every "must differ" case below also runs both programs (our own fixture code, in this
process) and shows they really behave differently, so merging them would be a bug, not a
missed opportunity.
"""
from __future__ import annotations

import ast

import numpy as np
import pytest

from evo.hashing import decision_hash, syntactic_hash
from evo.normalise import normalise

ENTRY = "priority"

BASE = """import numpy as np

def priority(item, bins):
    gap = bins - item
    return -gap
"""


def _same(a: str, b: str, entry: str | None = ENTRY) -> bool:
    return syntactic_hash(a, entry) == syntactic_hash(b, entry)


def _run(code: str, *args: object) -> object:
    """Run trusted fixture code and call its entry; the outcome (value or exception type)."""
    namespace: dict[str, object] = {}
    try:
        # dont_inherit: this test module's `from __future__ import annotations` must not leak in.
        exec(compile(code, "<fixture>", "exec", dont_inherit=True), namespace)
        return namespace[ENTRY](*args)  # type: ignore[operator]
    except Exception as exc:  # noqa: BLE001 - the exception type is the behaviour we compare
        return type(exc)


def _behaves_differently(a: str, b: str) -> bool:
    args = (30.0, np.array([50.0, 30.0, 100.0]))
    left, right = _run(a, *args), _run(b, *args)
    if isinstance(left, np.ndarray) or isinstance(right, np.ndarray):
        return not (isinstance(left, np.ndarray) and isinstance(right, np.ndarray) and np.array_equal(left, right))
    return left != right


# ---- what must not count -------------------------------------------------------------------
SAME_AS_BASE = {
    "formatting, comments, docstring, names": '''import numpy as np
def priority(size, capacities):
    """Best fit."""
    # the room left after placing the item
    room   =   capacities - size
    return -room
''',
    "module docstring and stray strings": '''"""A heuristic."""
import numpy as np

def priority(item, bins):
    "room left"
    gap = bins - item
    "now negate it"
    return -gap
''',
    "annotations that evaluate without fail": '''import numpy as np

def priority(item: float, bins: np.ndarray) -> np.ndarray:
    gap: np.ndarray = bins - item
    return -gap
''',
    "import alias": '''import numpy as numerical

def priority(item, bins):
    gap = bins - item
    return -gap
''',
    "no alias at all": '''import numpy

def priority(item, bins):
    gap = bins - item
    return -gap
''',
    "duplicate import, pass": '''import numpy as np
import numpy as np

def priority(item, bins):
    pass
    gap = bins - item
    return -gap
''',
    "unreachable code after return": '''import numpy as np

def priority(item, bins):
    gap = bins - item
    return -gap
    unused = gap * 2
    print(unused)
''',
    "if False block and unused helper and constant": '''import numpy as np

THRESHOLD = 0.5

def helper(x):
    return x * 2

def priority(item, bins):
    gap = bins - item
    if False:
        gap = helper(gap)
    return -gap
''',
}


@pytest.mark.parametrize("variant", list(SAME_AS_BASE.values()), ids=list(SAME_AS_BASE))
def test_what_cannot_change_behaviour_does_not_count(variant: str) -> None:
    assert _same(variant, BASE), ast.unparse(normalise(variant, ENTRY))


def test_else_after_return_and_elif_chains_are_flattened() -> None:
    nested = """def priority(item, bins):
    if item > 50:
        return bins
    else:
        if item > 20:
            return -bins
        else:
            return bins - item
"""
    flat = """def priority(item, bins):
    if item > 50:
        return bins
    elif item > 20:
        return -bins
    return bins - item
"""
    assert _same(nested, flat)


def test_helpers_are_renamed_when_the_entry_is_known_but_the_entry_is_not() -> None:
    a = """def tight(room):
    return -room

def priority(item, bins):
    return tight(bins - item)
"""
    b = a.replace("tight", "best")
    assert _same(a, b)
    assert not _same(a, b, entry=None)  # without the entry every top-level name is kept
    # The entry's own name is what the harness looks up: a different entry is different code.
    assert not _same(a, b.replace("priority", "other"))


def test_the_hash_is_a_stable_short_digest() -> None:
    digest = syntactic_hash(BASE, ENTRY)
    assert len(digest) == 20 and all(c in "0123456789abcdef" for c in digest)
    assert digest == syntactic_hash(BASE, ENTRY)


# ---- what must count -----------------------------------------------------------------------
def test_different_code_hashes_differently() -> None:
    assert not _same(BASE.replace("-gap", "gap"), BASE)
    assert not _same(BASE.replace("bins - item", "item - bins"), BASE)
    assert not _same(BASE.replace("numpy as np", "math"), BASE)


MUST_DIFFER = {
    # An annotation is evaluated when the `def` runs: np.ndarray without numpy imported fails.
    "annotation needing a missing import": (
        "def priority(item, bins):\n    return -(bins - item)\n",
        "def priority(item, bins: np.ndarray):\n    return -(bins - item)\n",
    ),
    # Subscripting a type that is not generic raises TypeError when the `def` runs.
    "annotation that fails to subscript": (
        "import numpy as np\ndef priority(item, bins):\n    return -(bins - item)\n",
        "import numpy as np\ndef priority(item, bins: np.float64[float]):\n    return -(bins - item)\n",
    ),
    # Dead code still decides scoping: the dead assignment makes `scale` local (UnboundLocalError).
    "unreachable assignment that makes a name local": (
        "scale = 2.0\ndef priority(item, bins):\n    return -(bins - item) * scale\n",
        "scale = 2.0\ndef priority(item, bins):\n    return -(bins - item) * scale\n    scale = 1.0\n",
    ),
    # A builtin is not a local variable: max and min must keep their spelling.
    "different builtins": (
        "def priority(item, bins):\n    return bins - max(bins)\n",
        "def priority(item, bins):\n    return bins - min(bins)\n",
    ),
    # Shadowing a builtin with a local is not the same as calling it.
    "local shadowing a builtin": (
        "def priority(item, bins):\n    m = 3.0\n    return bins - max(bins)\n",
        "def priority(item, bins):\n    max = lambda b: 3.0\n    return bins - max(bins)\n",
    ),
    # Keyword arguments match parameters by spelling.
    "keyword call to a renamed parameter": (
        "def h(gap, scale=1.0):\n    return -gap * scale\ndef priority(item, bins):\n    return h(bins - item, scale=2.0)\n",
        "def h(gap, weight=1.0):\n    return -gap * weight\ndef priority(item, bins):\n    return h(bins - item, scale=2.0)\n",
    ),
    # locals() sees variables by name.
    "dynamic lookup of locals": (
        "def priority(item, bins):\n    gap = bins - item\n    return -locals()['gap']\n",
        "def priority(item, bins):\n    room = bins - item\n    return -locals()['gap']\n",
    ),
    # A helper referred to under its name keeps mattering; one not referred to is dead.
    "entry calling a helper vs a helper calling the entry": (
        "def priority(item, bins):\n    return helper(bins, item)\ndef helper(b, i):\n    return -(b - i)\n",
        "def helper(item, bins):\n    return priority(bins, item)\ndef priority(b, i):\n    return -(b - i)\n",
    ),
    # `if True:` keeps its body; `if False:` drops it: not the same program.
    "constant condition": (
        "def priority(item, bins):\n    gap = bins - item\n    if True:\n        gap = gap * 0\n    return -gap\n",
        "def priority(item, bins):\n    gap = bins - item\n    if False:\n        gap = gap * 0\n    return -gap\n",
    ),
    # A helper with a default that fails when the `def` runs is not dead code.
    "unused helper whose definition fails": (
        "def priority(item, bins):\n    return -(bins - item)\n",
        "def helper(x=undefined_name):\n    return x\ndef priority(item, bins):\n    return -(bins - item)\n",
    ),
    # A yield in unreachable code still makes the function a generator.
    "unreachable yield": (
        "def priority(item, bins):\n    return -(bins - item)\n",
        "def priority(item, bins):\n    return -(bins - item)\n    yield 1\n",
    ),
}


@pytest.mark.parametrize("pair", list(MUST_DIFFER.values()), ids=list(MUST_DIFFER))
def test_what_might_change_behaviour_counts(pair: tuple[str, str]) -> None:
    a, b = pair
    assert _behaves_differently(a, b), "the fixture pair should behave differently"
    assert not _same(a, b), ast.unparse(normalise(b, ENTRY))


def test_class_attributes_keep_their_names() -> None:
    a = """class Rule:
    weight = 2.0

def priority(item, bins):
    return -(bins - item) * Rule.weight
"""
    b = a.replace("weight = 2.0", "scale = 2.0")  # Rule.weight no longer exists
    assert _behaves_differently(a, b)
    assert not _same(a, b)


# ---- the functional signature ----------------------------------------------------------------
def test_decision_hash_depends_on_every_choice_and_their_order() -> None:
    choices = [0, 3, 1, 1, 2]
    assert decision_hash(choices) == decision_hash(np.array(choices))
    assert decision_hash(choices) != decision_hash([0, 3, 1, 1, 3])
    assert decision_hash(choices) != decision_hash(list(reversed(choices)))
    # Separators matter: [1, 12] is not [11, 2].
    assert decision_hash([1, 12]) != decision_hash([11, 2])
