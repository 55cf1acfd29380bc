"""The offline backend: a program mutation model, not an LLM.

It answers a request by editing its parents' code on the AST (see ``evo.mutation``) and
replies in the format an LLM is asked for: a one-sentence thought in braces, then a Python
block. Its answers go through the same parser as an LLM's. Each operator has its own mix
of edits, in the spirit of what its prompt asks an LLM for, so that operators differ in
what they achieve and the bandit's choice matters offline too.
"""
from __future__ import annotations

import time
import zlib
from typing import Any, Mapping

import numpy as np

from evo.errors import UserError
from evo.llm.base import Request, Response
from evo.mutation import EDITS, Edit, EditFailed, Mutator

# operator -> [(edit name, weight)]; edits named by Mutator method.
_MIXES: dict[str, list[tuple[str, float]]] = {
    "i1": [("fresh", 1.0)],
    "e1": [("restructure", 0.7), ("fresh", 0.3)],
    "e2": [("blend", 0.6), ("crossover", 0.4)],
    "m1": [("replace_subexpression", 0.4), ("wrap", 0.2), ("swap_operator", 0.2), ("combine_with_term", 0.2)],
    "m2": [("perturb_constant", 1.0)],
    "m3": [("delete_term", 1.0)],
    "crossover": [("crossover", 0.7), ("blend", 0.3)],
    "elitist": [("combine_with_term", 0.4), ("replace_subexpression", 0.3), ("perturb_constant", 0.3)],
    # Repairs of the commonest failures, chosen at random: this model reads no prose, so
    # not from the error text as an LLM would. Non-finite scores (guard), a scalar where
    # an array is needed (combine with a term), a broken subterm (delete it).
    "fix": [("guard", 0.4), ("combine_with_term", 0.3), ("delete_term", 0.3)],
}
_TWO_PARENT = {"crossover", "blend"}
# Expression nodes an answer's scoring expressions may have; larger answers are pruned.
# The best bin packing heuristics found offline have 17 to 120 nodes; unpruned lineages
# reached 300 and more, at 10 times the evaluation time of Best Fit.
MAX_NODES = 120
# "keep" answers with the first parent unchanged: an operator that achieves nothing, for
# studying how the bandit treats one (the syntactic hash makes its answers free).
KEEP = "keep"


def mixes(overrides: Mapping[str, Mapping[str, float]] | None) -> dict[str, list[tuple[str, float]]]:
    """The default mixes with ``overrides`` (``llm.mix`` in config: operator -> {edit: weight})."""
    out = {op: list(mix) for op, mix in _MIXES.items()}
    for op, mix in (overrides or {}).items():
        if not isinstance(mix, Mapping) or not mix:
            raise UserError(f"llm.mix.{op} must map edit names to weights (got {mix!r})")
        unknown = [name for name in mix if name not in EDITS and name != KEEP]
        if unknown:
            raise UserError(f"llm.mix.{op}: unknown edit(s) {', '.join(unknown)}; "
                            f"choose from {', '.join((*EDITS, KEEP))}")
        weights = [(str(name), w) for name, w in mix.items()]
        if any(isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0 for _, w in weights) \
                or not sum(w for _, w in weights) > 0:
            raise UserError(f"llm.mix.{op}: weights must be numbers >= 0, not all 0")
        out[str(op)] = [(name, float(w)) for name, w in weights]
    return out


class OfflineBackend:
    model = "offline-mutation"

    def __init__(self, entry: str, vocabulary: tuple[str, ...], seed: int,
                 mix: Mapping[str, Any] | None = None, max_nodes: int = MAX_NODES):
        self.entry = entry
        self.vocabulary = tuple(vocabulary)
        self.seed = seed
        self.mixes = mixes(mix)
        self.max_nodes = max_nodes

    def complete(self, request: Request) -> Response:
        started = time.perf_counter()
        # The generator depends on the run's seed, the candidate and the operator only,
        # so an answer never depends on which thread asks or when.
        rng = np.random.default_rng([self.seed, request.sample, zlib.crc32(request.operator.encode())])
        edit = self._edit(request, rng)
        text = f"{{{edit.thought}}}\n\n```python\n{edit.code}\n```\n"
        return Response(text=text, model=self.model, latency_s=time.perf_counter() - started)

    def _edit(self, request: Request, rng: np.random.Generator) -> Edit:
        mutator = Mutator(self.entry, self.vocabulary, rng, request.hints)
        mix = self.mixes.get(request.operator, self.mixes["m1"])
        names = [name for name, _ in mix]
        weights = np.array([w for _, w in mix])
        parents = list(request.parents)
        # A few tries, then give up honestly: the answer is the parent with a thought that
        # says so, and the syntactic hash recognises it as a repeat at no cost.
        for _ in range(4):
            name = names[int(rng.choice(len(names), p=weights / weights.sum()))]
            if name == KEEP:
                break
            try:
                if name in _TWO_PARENT:
                    if len(parents) < 2:
                        continue
                    edit = getattr(mutator, name)(parents[0], parents[1])
                else:
                    edit = getattr(mutator, name)(parents[0])
                return mutator.document(mutator.prune(edit, self.max_nodes))
            except (EditFailed, SyntaxError, IndexError, ValueError):
                continue
        return Edit(parents[0], "Kept the parent unchanged: no edit applied.")
