"""Operators as data: every operator has a template that renders whole, the config shape
reads into weights and selection rules, and ReEvo's computed reflections say true things."""
import ast
import re

import numpy as np
import pytest
from omegaconf import OmegaConf

from evo.errors import UserError
from evo.operators import OPERATORS, Parent, render, render_reflection, template
from evo.reflection import Memory, compare, terms
from evo.settings import _operators

BETTER = "import numpy as np\n\ndef priority(item, bins):\n    return -(bins - item) + 0.5 * np.log(bins)\n"
WORSE = "import numpy as np\n\ndef priority(item, bins):\n    return -(bins - item) * np.max(bins)\n"
PARENTS = [Parent(3, "Best fit with a log bonus.", BETTER, 3.5), Parent(7, "", WORSE, 4.2, "ValueError: shape")]


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_every_operator_renders_its_template_whole(name):
    op = OPERATORS[name]
    parents = PARENTS[:op.arity]
    system, user = render(op, "TASK TEXT", "def priority(item, bins):", "excess %", parents, "REFLECTION")
    assert system.role == "system" and user.role == "user"
    assert "TASK TEXT" in user.content and "def priority(item, bins):" in user.content
    assert not re.search(r"\$[a-z_]+", user.content), user.content  # no placeholder left
    for parent in parents:
        assert parent.code.strip() in user.content and f"{parent.score:.4f}" in user.content
    assert ("REFLECTION" in user.content) == (op.reflection != "")
    if op.source == "failed":
        assert "ValueError: shape" in render(op, "T", "S", "x", PARENTS[1:], "").__getitem__(1).content


@pytest.mark.parametrize("kind", ["short", "long"])
def test_reflection_requests_render_whole(kind):
    _, user = render_reflection(kind, "TASK TEXT", "excess %", PARENTS, "EVIDENCE")
    assert "EVIDENCE" in user.content and BETTER.strip() in user.content
    assert not re.search(r"\$[a-z_]+", user.content)


def test_eoh_templates_state_the_papers_intents():
    # The words that carry each EoH operator's intent (Liu et al., 2024).
    assert "totally different" in template("e1").template
    assert "backbone idea" in template("e2").template
    assert "modified version" in template("m1").template
    assert "parameter settings" in template("m2").template
    assert "simplify" in template("m3").template and "generalises" in template("m3").template


def test_operator_config_shapes():
    cfg = OmegaConf.create({"operators": {"m1": {"weight": 2.0, "selection": "curiosity"}, "m2": 0.5,
                                          "e1": {"weight": 0}, "crossover": None}})
    chosen = {op.name: op for op in _operators(cfg.operators)}
    assert set(chosen) == {"m1", "m2", "crossover"}  # weight 0 disables
    assert chosen["m1"].weight == 2.0 and chosen["m1"].selection == "curiosity"
    assert chosen["m2"].weight == 0.5 and chosen["m2"].selection is None
    assert chosen["crossover"].weight == 1.0
    assert [op.name for op in _operators(OmegaConf.create(["m1", "e2"]))] == ["m1", "e2"]
    for bad in ({"m1": {"weight": -1}}, {"m1": {"wieght": 1}}, {"zz": 1.0}, {"m1": 0}, {"fix": 1.0}, {"m1": "x"},
                {"m1": 1.0, "elitist": {"selection": "uniform"}}):
        with pytest.raises(UserError):
            _operators(OmegaConf.create(bad))


def test_compare_names_the_distinctive_terms():
    comparison = compare(BETTER, WORSE)
    assert comparison.better_only == ("np.log(bins)",)  # not the bigger formulas built on it
    assert comparison.worse_only == ("np.max(bins)",)
    text = comparison.text(3.5, 4.2)
    assert "`np.log(bins)`" in text and "3.5000 against 4.2000" in text
    same = compare(BETTER, BETTER.replace("0.5", "0.7"))
    assert same.better_only == () and same.worse_only == ()
    assert "differ only in constants" in same.text(1.0, 2.0)


def test_terms_are_expression_subtrees_with_a_name():
    found = terms(BETTER)
    assert {"bins - item", "-(bins - item)", "np.log(bins)", "0.5 * np.log(bins)"} <= found
    assert "bins" not in found and "0.5" not in found  # single names and constants say nothing
    assert terms("def broken(:") == frozenset()


def test_memory_learns_which_terms_pay_and_which_never_do():
    memory = Memory()
    base = "def priority(item, bins):\n    return -(bins - item)\n"
    good = "def priority(item, bins):\n    return -(bins - item) + np.log(bins)\n"
    bad = "def priority(item, bins):\n    return -(bins - item) * np.max(bins)\n"
    assert memory.lessons().text() == ""
    for i in range(6):
        memory.observe(base, 4.0, good, 3.9 if i < 5 else 4.1)  # better 5 times of 6
        memory.observe(base, 4.0, bad, 4.5)  # never better
    lessons = memory.lessons()
    assert lessons.observed == 12
    assert lessons.hints[0] in ("np.log(bins)", "-(bins - item) + np.log(bins)")
    assert "np.max(bins)" in dict(lessons.futile)
    assert "np.max(bins)" not in lessons.hints
    text = lessons.text()
    assert "From 12 modifications" in text and "(5 of 6 times)" in text and "never helped" in text
    for hint in lessons.hints:
        ast.parse(hint, mode="eval")  # the offline model inserts them as code


def test_memory_is_a_pure_function_of_its_observations():
    rng = np.random.default_rng(0)
    codes = [f"def priority(item, bins):\n    return -(bins - item) + {c} * np.log(bins + {k})\n"
             for c in (0.1, 0.5, 2.0) for k in (1, 2, 3)]
    observations = [(codes[int(rng.integers(9))], float(rng.random()), codes[int(rng.integers(9))],
                     float(rng.random())) for _ in range(50)]
    first, second = Memory(), Memory()
    for o in observations:
        first.observe(*o)
        second.observe(*o)
    assert first.lessons() == second.lessons()
