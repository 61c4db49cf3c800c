"""One home per name (STYLE.md §13): the vocabulary and the shared formulas are defined once."""

from __future__ import annotations

import ast
from pathlib import Path

from salmubench import measures, vocab
from salmubench.data.accessories import DRAW
from salmubench.data.personas import ATTRIBUTES

LIBRARY = Path(__file__).resolve().parents[1] / "src" / "salmubench"


def _top_level_definitions(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names


def test_no_library_module_redefines_a_vocabulary_name_or_a_shared_formula():
    shared = {n for n in vars(vocab) if n.isupper() and not n.startswith("_")}
    shared |= {"derangement", "pair_similarity", "similarity_matrix", "gap_share", "GAP_EPS"}
    homes = {LIBRARY / "vocab.py", LIBRARY / "measures.py"}
    clashes = {
        str(p.relative_to(LIBRARY)): sorted(_top_level_definitions(p) & shared)
        for p in sorted(LIBRARY.rglob("*.py"))
        if p not in homes and _top_level_definitions(p) & shared
    }
    assert clashes == {}


def test_every_accessory_and_attribute_type_of_the_vocabulary_is_drawn_or_generated():
    assert tuple(DRAW) == vocab.ACCESSORIES
    assert tuple(ATTRIBUTES) == vocab.ATTRIBUTE_TYPES


def test_gap_share_is_the_share_of_the_way_from_start_to_end():
    assert measures.gap_share(0.25, 0.5, 0.0) == 0.5  # forgetting: from Compromised to Clean
    assert measures.gap_share(0.4, 0.0, 0.5) == 0.8  # holdout kept: from Clean to Compromised
    assert measures.gap_share(0.3, 0.2, 0.2 + measures.GAP_EPS / 2) is None
