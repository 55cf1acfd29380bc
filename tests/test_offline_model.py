"""The offline mutation model: deterministic, parseable, and faithful to each operator."""
import ast

import numpy as np
import pytest

from evo.llm.base import Request
from evo.llm.offline import OfflineBackend
from evo.mutation import Mutator
from evo.parse import parse_answer

SEED = "import numpy as np\n\ndef priority(item, bins):\n    return -(bins - item)\n"
OTHER = "import numpy as np\n\ndef priority(item, bins):\n    return bins / item - 0.5 * (bins - np.max(bins))\n"
VOCAB = ("bins", "item", "bins - item", "bins / item", "bins - np.max(bins)")


def answer(operator: str, sample: int, seed: int = 0) -> str:
    backend = OfflineBackend("priority", VOCAB, seed)
    return backend.complete(Request(messages=(), operator=operator, parents=(SEED, OTHER), sample=sample)).text


@pytest.mark.parametrize("operator", ["i1", "e1", "e2", "m1", "m2", "m3", "crossover", "elitist", "fix"])
def test_every_operator_answers_in_the_llm_format(operator):
    for sample in range(10):
        text = answer(operator, sample)
        assert text.startswith("{") and "```python" in text
        parsed = parse_answer(text, "priority", 2)
        assert parsed.thought
        ast.parse(parsed.code)


def test_same_seed_and_sample_give_the_same_answer():
    assert answer("m1", 5) == answer("m1", 5)
    assert answer("m1", 5) != answer("m1", 6) or answer("m1", 7) != answer("m1", 8)


def test_m2_changes_only_constants():
    code = "import numpy as np\n\ndef priority(item, bins):\n    return -(bins - item) + 0.5 * bins\n"
    edit = Mutator("priority", VOCAB, np.random.default_rng(1)).perturb_constant(code)
    strip = lambda src: [type(n).__name__ for n in ast.walk(ast.parse(src))]
    assert strip(edit.code) == strip(code) and edit.code != code


def test_m3_makes_code_smaller():
    code = "import numpy as np\n\ndef priority(item, bins):\n    return -(bins - item) + 0.5 * np.sqrt(bins)\n"
    for seed in range(5):
        edit = Mutator("priority", VOCAB, np.random.default_rng(seed)).delete_term(code)
        assert len(list(ast.walk(ast.parse(edit.code)))) < len(list(ast.walk(ast.parse(code))))


def test_edits_target_assignments_when_the_function_has_them():
    code = ("import numpy as np\n\ndef select_next_node(current_node, destination_node, unvisited_nodes, distance_matrix):\n"
            "    scores = distance_matrix[current_node][unvisited_nodes]\n"
            "    return unvisited_nodes[np.argmin(scores)]\n")
    for seed in range(10):
        edit = Mutator("select_next_node", ("distance_matrix[destination_node][unvisited_nodes]",),
                       np.random.default_rng(seed)).replace_subexpression(code)
        assert edit.code.rstrip().endswith("return unvisited_nodes[np.argmin(scores)]")
