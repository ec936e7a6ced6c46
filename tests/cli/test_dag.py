"""``wsfm dag``'s formats: every edge, every stage's mark, a real PNG."""

import re

from wsfm.cli.dag import (
    edges,
    format_dot,
    format_mermaid,
    format_text,
    layers,
    render_png,
)
from wsfm.orchestrate.staleness import StageState
from wsfm.stages import STAGES

MARKS = {"train_refiner": "stale", "train_baseline": "missing", "evaluate": "stale",
         "register": "missing"}  # every other stage: cached
STATES = [StageState(s.name, f"fp{i}", MARKS.get(s.name, "cached"), s.deps,
                     ["why"] if s.name in MARKS else [])
          for i, s in enumerate(STAGES)]
FP = {s.stage: s.fingerprint for s in STATES}
EDGES = {(d, s.name) for s in STAGES for d in s.deps}


def test_edges_are_the_stage_specs_deps():
    assert set(edges(STATES)) == EDGES and len(edges(STATES)) == len(EDGES)
    assert ("train_cold_ot", "generate_reflow") in EDGES and ("evaluate", "register") in EDGES


def test_every_format_lists_every_edge_and_every_mark():
    text = format_text(STATES, "toy2d")
    assert {tuple(m) for m in re.findall(r"^  (\w+) -> (\w+)$", text, re.MULTILINE)} == EDGES
    assert re.search(rf"^  train_refiner\s+stale\s+{FP['train_refiner']}  \(why\)$", text,
                     re.MULTILINE)
    mermaid = format_mermaid(STATES, "toy2d")
    assert {tuple(m) for m in re.findall(r"^  (\w+) --> (\w+)$", mermaid, re.MULTILINE)} == EDGES
    assert 'register["register<br/>missing"]:::missing' in mermaid
    dot = format_dot(STATES, "toy2d")
    assert {tuple(m) for m in re.findall(r'^  "(\w+)" -> "(\w+)";$', dot, re.MULTILINE)} == EDGES
    assert dot.startswith('digraph "toy2d" {') and dot.rstrip().endswith("}")
    assert '"evaluate" [label="evaluate\\nstale", fillcolor="#fff3c4"];' in dot


def test_columns_put_every_stage_left_of_what_it_feeds():
    col = layers(STATES)
    assert all(col[a] < col[b] for a, b in EDGES)
    assert col["register"] == max(col.values()) and col["prepare_data"] == 0
    # Side branches sit beside the stage they join, not at the far left.
    assert col["train_baseline"] == col["fit_evaluator"] == col["evaluate"] - 1


def test_png_is_a_real_image(tmp_path):
    out = tmp_path / "dag.png"
    render_png(STATES, "toy2d", out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
