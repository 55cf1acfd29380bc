"""parse_answer on the shapes real answers take."""
from __future__ import annotations

import ast
import time

import pytest

from evo.parse import MAX_THOUGHT, ParseError, parse_answer
from llm_server import heuristic_answer, heuristic_code, huge_answer, think_answer, truncated_answer

SIMPLE = "def priority(item, bins):\n    return -(bins - item)\n"


def parse(text: str):
    return parse_answer(text, "priority", 2)


def run(code: str, *args):
    namespace: dict = {}
    exec(compile(code, "<candidate>", "exec"), namespace)  # trusted test code only
    return namespace["priority"](*args)


def test_eoh_format():
    p = parse(heuristic_answer(2))
    assert p.thought == "Variant 2: score each feasible bin by how tightly the item fills it."
    assert p.code == heuristic_code(2)


def test_no_fences_with_prose_around():
    text = ("{Fill the tightest bin.}\nHere is my function:\n\nimport numpy as np\n\n" + SIMPLE
            + "\nThis prefers bins with little room left.\nIt should work well.\n")
    p = parse(text)
    assert p.thought == "Fill the tightest bin."
    assert p.code == "import numpy as np\n\n" + SIMPLE
    assert "prefers" not in p.code


def test_no_fences_no_thought_braces_takes_the_first_sentence():
    p = parse("This picks the tightest bin. More words here.\n" + SIMPLE)
    assert p.thought == "This picks the tightest bin."
    assert p.code == SIMPLE


def test_prose_before_and_after_a_fenced_block():
    p = parse("Sure! Here is the heuristic.\n\n```python\n" + SIMPLE + "```\n\nLet me know!")
    assert p.code == SIMPLE and p.thought == "Sure!"


@pytest.mark.parametrize("tag", ["python", "Python", "py", "python3", ""])
def test_fence_language_tags(tag):
    assert parse(f"{{t t t}}\n```{tag}\n{SIMPLE}```").code == SIMPLE


def test_non_python_blocks_are_ignored():
    text = "```bash\npip install numpy\n```\n{Idea here.}\n```python\n" + SIMPLE + "```\n```text\noutput\n```"
    assert parse(text).code == SIMPLE


def test_fence_right_after_the_thought_and_closing_fence_on_the_code_line():
    p = parse("{Idea one.}```python\ndef priority(item, bins):\n    return -bins```")
    assert p.thought == "Idea one." and p.code == "def priority(item, bins):\n    return -bins\n"


def test_tilde_fences_indented_fences_and_crlf():
    assert parse("~~~python\n" + SIMPLE + "~~~").code == SIMPLE
    assert parse("1. Code:\n   ```python\n   " + SIMPLE.replace("\n    ", "\n       ") + "   ```").code == SIMPLE
    assert parse("{a b c}\r\n```python\r\n" + SIMPLE.replace("\n", "\r\n") + "```\r\n").code == SIMPLE


def test_think_block_is_ignored_even_when_it_holds_code():
    p = parse(think_answer(4))
    assert p.thought.startswith("Variant 4") and p.code == heuristic_code(4)


def test_closing_think_tag_without_opening():
    p = parse("I think def priority(x) would be wrong.\n</think>\n" + heuristic_answer(1))
    assert p.code == heuristic_code(1)


def test_unterminated_think_is_a_clear_error():
    with pytest.raises(ParseError, match="think"):
        parse(think_answer(0, closed=False))


def test_thinking_and_reasoning_tags():
    assert parse("<thinking>hmm ```python\nx=(\n```</thinking>\n" + heuristic_answer(0)).code == heuristic_code(0)
    assert parse("<reasoning>plan</reasoning>" + heuristic_answer(0)).code == heuristic_code(0)


def test_several_blocks_take_the_last_definition_with_helpers_and_imports():
    text = ("{Combine two ideas.}\n```python\nimport numpy as np\nimport math\n\nWEIGHT = 0.5\n\n"
            "def gap(item, bins):\n    return bins - item\n\ndef unused():\n    return 1\n```\n"
            "First try:\n```python\ndef priority(item, bins):\n    return bins\n```\n"
            "Better:\n```python\ndef priority(item, bins):\n    return -gap(item, bins) * WEIGHT + np.zeros(len(bins))\n```\n")
    p = parse(text)
    assert p.thought == "Combine two ideas."
    tree = ast.parse(p.code)
    names = [getattr(n, "name", None) or ast.unparse(n) for n in tree.body]
    assert names == ["import numpy as np", "WEIGHT = 0.5", "gap", "priority"]
    assert "return bins\n" not in p.code and "unused" not in p.code and "math" not in p.code
    assert list(run(p.code, 0.5, __import__("numpy").array([1.0, 0.75]))) == [-0.25, -0.125]


def test_helpers_in_the_same_block_and_nested_functions_are_kept():
    code = ("import numpy as np\n\n\ndef _fit(r):\n    def inner(x):\n        return x * 2\n    return inner(r)\n\n\n"
            "def priority(item, bins):\n    return -_fit(bins - item)\n")
    assert parse(f"```python\n{code}```").code == code


def test_example_calls_and_main_guard_are_dropped():
    text = ("```python\nimport numpy as np\nSCALE = 2.0\n\ndef priority(item, bins):\n    return -bins * SCALE\n\n"
            "bins = np.array([0.5, 0.2])\nprint(priority(0.1, bins))\n"
            "if __name__ == '__main__':\n    print('hi')\n```")
    code = parse(text).code
    assert code == "import numpy as np\nSCALE = 2.0\n\ndef priority(item, bins):\n    return -bins * SCALE\n"


def test_docstring_module_is_kept():
    code = '"""Tight fit."""\n' + SIMPLE
    assert parse(f"```python\n{code}```").code == code


def test_truncated_fenced_code():
    with pytest.raises(ParseError, match="truncated"):
        parse(truncated_answer())


def test_truncated_unfenced_code():
    with pytest.raises(ParseError, match="truncated"):
        parse("{x y z}\nimport numpy as np\ndef priority(item, bins):\n    s = np.maximum(bins,\n")


def test_truncated_unfenced_code_is_never_silently_shortened():
    # Dropping the broken last line would leave a function that returns None.
    with pytest.raises(ParseError):
        parse("def priority(item, bins):\n    s = bins - item\n    return s * (1 +")


def test_syntax_error_in_a_closed_block():
    with pytest.raises(ParseError, match="syntax error at line 2"):
        parse("```python\ndef priority(item, bins):\n    return bins +\n```")


def test_missing_entry_names_what_was_defined():
    with pytest.raises(ParseError, match=r"does not define `priority` \(it defines `heuristic`\)"):
        parse("```python\ndef heuristic(item, bins):\n    return bins\n```")


def test_entry_only_inside_a_class():
    with pytest.raises(ParseError, match="top level"):
        parse("```python\nclass H:\n    def priority(self, item, bins):\n        return bins\n```")


@pytest.mark.parametrize("signature, ok", [
    ("item, bins", True), ("item, bins, k=2", True), ("item, bins=None", True), ("*args", True),
    ("item, *rest", True), ("item", False), ("item, bins, k", False), ("item, bins, *, k", False),
    ("item, bins, *, k=1", True), ("item, bins, **kw", True),
])
def test_signature(signature, ok):
    text = f"```python\ndef priority({signature}):\n    return 0\n```"
    if ok:
        parse(text)
    else:
        with pytest.raises(ParseError, match="priority"):
            parse(text)


def test_async_entry_is_rejected():
    with pytest.raises(ParseError, match="async"):
        parse("```python\nasync def priority(item, bins):\n    return bins\n```")


@pytest.mark.parametrize("text", ["", "   \n\t ", None])
def test_empty(text):
    with pytest.raises(ParseError, match="empty"):
        parse(text)


def test_prose_only():
    with pytest.raises(ParseError, match="no Python code"):
        parse("I am sorry, I cannot write that function.")


def test_two_megabyte_answer_is_fast():
    text = huge_answer()
    start = time.perf_counter()
    p = parse(text)
    assert time.perf_counter() - start < 1.0
    assert p.code == heuristic_code(1) and len(p.thought) <= MAX_THOUGHT


def test_two_megabytes_of_unclosed_braces_and_backticks_is_fast():
    text = ("{ ` " * 500_000) + "\n```python\n" + SIMPLE + "```"
    start = time.perf_counter()
    assert parse(text).code == SIMPLE
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("fence", [True, False])
def test_megabytes_of_code_are_refused_quickly(fence):
    body = "".join(f"    x{i} = bins * {i}\n" for i in range(60_000))
    code = "def priority(item, bins):\n" + body + "    return x1\n"
    text = f"```python\n{code}```" if fence else code + "\nThat was long."
    start = time.perf_counter()
    with pytest.raises(ParseError, match="characters long"):
        parse(text)
    assert time.perf_counter() - start < 1.5


def test_long_but_reasonable_unfenced_code():
    body = "".join(f"    x{i} = bins * {i}\n" for i in range(2_000))
    text = "Here it is.\ndef priority(item, bins):\n" + body + "    return x1\n\nThat was long."
    assert parse(text).code.endswith("return x1\n")


def test_long_thought_is_cut():
    p = parse("{" + "word " * 300 + "}\n```python\n" + SIMPLE + "```")
    assert len(p.thought) <= MAX_THOUGHT and p.thought.endswith("…")


def test_parsed_code_always_compiles_and_defines_entry():
    for n in range(16):
        code = parse(heuristic_answer(n)).code
        compile(code, "<c>", "exec")
        assert any(isinstance(x, ast.FunctionDef) and x.name == "priority" for x in ast.parse(code).body)


@pytest.mark.parametrize("text", [
    "~~~ ``` " * 250_000,  # marks without a line after them
    "```" * 700_000,
    "```\n" * 300_000,  # empty blocks
    "<think>" + "x" * 2_000_000,
    "<THINK>" + "x" * 2_000_000 + "</think>\n```python\n" + SIMPLE + "```",
    "{" * 2_000_000,
    "def priority(item, bins):\n" + "    (\n" * 300_000,
])
def test_pathological_megabytes_stay_linear(text):
    start = time.perf_counter()
    try:
        parse(text)
    except ParseError:
        pass
    assert time.perf_counter() - start < 1.5


def test_inline_backticks_before_the_block():
    assert parse("Use ```np.argmax``` style. ```python\n" + SIMPLE + "```").code == SIMPLE


def test_a_missing_numpy_import_is_added():
    p = parse_answer("```python\ndef priority(item, bins):\n    return -np.abs(bins - item)\n```", "priority", 2)
    assert p.code == "import numpy as np\n\ndef priority(item, bins):\n    return -np.abs(bins - item)\n"


def test_numpy_bound_otherwise_is_left_alone():
    for code in ("import numpy as np\ndef priority(item, bins):\n    return -np.abs(bins)\n",
                 "def priority(item, bins):\n    import numpy as np\n    return -np.abs(bins)\n",
                 "def priority(item, bins):\n    return -bins\n"):
        assert parse_answer(f"```python\n{code}```", "priority", 2).code == code


def test_the_thought_is_the_docstring_when_the_prose_has_none():
    answer = '```python\nimport numpy as np\n\ndef priority(item, bins):\n    """Prefer tight fits. Then more."""\n    return -bins\n```'
    assert parse_answer(answer, "priority", 2).thought == "Prefer tight fits."


def test_a_copied_placeholder_docstring_is_no_thought():
    answer = '```python\ndef priority(item, bins):\n    """<your idea in one sentence>"""\n    return -bins\n```'
    assert parse_answer(answer, "priority", 2).thought == ""


def test_an_idea_line_and_braces_come_before_the_docstring():
    code = 'def priority(item, bins):\n    """Doc."""\n    return -bins\n'
    assert parse_answer(f"Idea: Use tight fits.\n```python\n{code}```", "priority", 2).thought == "Use tight fits."
    assert parse_answer(f"{{Use tight fits}}\n```python\n{code}```", "priority", 2).thought == "Use tight fits"


def test_a_thought_is_one_sentence():
    answer = "{Prefer tight fits. The goal is to use as few bins as possible.}\n```python\ndef priority(item, bins):\n    return -bins\n```"
    assert parse_answer(answer, "priority", 2).thought == "Prefer tight fits."


def test_prose_inside_the_fence_around_a_valid_function_is_dropped():
    answer = ("```python\n{like this}\n\nimport numpy as np\n\ndef priority(item, bins):\n    return -(bins - item)\n"
              "\n# Example usage:\nbins = np.array([1.0])\n```")
    p = parse_answer(answer, "priority", 2)
    assert p.code.startswith("import numpy as np\n\ndef priority(item, bins):\n    return -(bins - item)")
    assert "{like this}" not in p.code
