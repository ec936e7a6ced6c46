"""``wsfm dag PIPELINE``: the stages and their edges, each marked cached / stale / missing.

Reads the pipeline YAML and the artifact store under ``<home>``; writes the graph to stdout
or ``-o FILE``: text (default), Mermaid (``.mmd``), Graphviz DOT (``.dot``) or a PNG drawn with
matplotlib (``.png``; no Graphviz binary needed).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from wsfm.errors import UserError
from wsfm.orchestrate.staleness import StageState

__all__ = ["add_parser", "edges", "format_dot", "format_mermaid", "format_text", "layers",
           "render_png"]

COLOURS = {"cached": "#c8e6c9", "stale": "#fff3c4", "missing": "#ffcdd2",
           "running": "#bbdefb", "unused": "#eeeeee"}
SUFFIXES = {".dot": "dot", ".gv": "dot", ".mmd": "mermaid", ".png": "png", ".txt": "text"}


def edges(states: list[StageState]) -> list[tuple[str, str]]:
    """``(upstream, stage)`` pairs, in stage order."""
    return [(dep, s.stage) for s in states for dep in s.deps]


def layers(states: list[StageState]) -> dict[str, int]:
    """Each stage's column, right-aligned: the last stages at the right, every other stage
    one column left of its nearest downstream stage (so side branches sit beside the stages
    they join). ``states`` is in topological order."""
    height: dict[str, int] = {}
    for s in reversed(states):
        below = [height[t.stage] for t in states if s.stage in t.deps]
        height[s.stage] = 1 + max(below, default=-1)
    top = max(height.values(), default=0)
    return {name: top - h for name, h in height.items()}


def format_text(states: list[StageState], title: str) -> str:
    lines = [title, "stages:"]
    for s in states:
        why = f"  ({'; '.join(s.reasons)})" if s.reasons else ""
        lines.append(f"  {s.stage:<16} {s.state:<8} {s.fingerprint}{why}")
    lines.append("edges:")
    lines += [f"  {a} -> {b}" for a, b in edges(states)]
    return "\n".join(lines) + "\n"


def format_mermaid(states: list[StageState], title: str) -> str:
    lines = [f"%% {title}", "graph LR"]
    lines += [f'  {s.stage}["{s.stage}<br/>{s.state}"]:::{s.state}' for s in states]
    lines += [f"  {a} --> {b}" for a, b in edges(states)]
    lines += [f"  classDef {state} fill:{colour}" for state, colour in COLOURS.items()]
    return "\n".join(lines) + "\n"


def format_dot(states: list[StageState], title: str) -> str:
    lines = [f'digraph "{title}" {{', "  rankdir=LR;",
             '  node [shape=box, style="rounded,filled"];']
    lines += [f'  "{s.stage}" [label="{s.stage}\\n{s.state}", fillcolor="{COLOURS[s.state]}"];'
              for s in states]
    lines += [f'  "{a}" -> "{b}";' for a, b in edges(states)]
    return "\n".join(lines + ["}"]) + "\n"


def render_png(states: list[StageState], title: str, path: Path) -> None:
    """Boxes by depth from left to right, arrows for edges, coloured by state."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    depth = layers(states)
    rows: dict[int, int] = {}
    where: dict[str, tuple[float, float]] = {}
    for s in states:
        where[s.stage] = (depth[s.stage] * 3.0, -rows.get(depth[s.stage], 0) * 1.2)
        rows[depth[s.stage]] = rows.get(depth[s.stage], 0) + 1
    fig, ax = plt.subplots(figsize=(2.2 * (max(depth.values()) + 1) + 1,
                                    1.0 * max(rows.values()) + 1.2))
    w, h = 2.2, 0.7
    for s in states:
        x, y = where[s.stage]
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.05",
                                    facecolor=COLOURS[s.state], edgecolor="#444444",
                                    zorder=2))
        ax.text(x, y, f"{s.stage}\n{s.state}", ha="center", va="center", fontsize=9, zorder=3)
    for a, b in edges(states):
        (xa, ya), (xb, yb) = where[a], where[b]
        skips = depth[b] - depth[a] > 1  # arc over the boxes in between
        ax.annotate("", xy=(xb - w / 2, yb), xytext=(xa + w / 2, ya), zorder=1,
                    arrowprops={"arrowstyle": "->", "color": "#444444",
                                "connectionstyle": f"arc3,rad={-0.3 if skips else 0.0}"})
    xs, ys = [p[0] for p in where.values()], [p[1] for p in where.values()]
    ax.set_xlim(min(xs) - w, max(xs) + w)
    ax.set_ylim(min(ys) - 1, max(ys) + 1.6)
    ax.set_title(title, fontsize=10)
    ax.axis("off")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def _cmd_dag(args: argparse.Namespace) -> int:
    from wsfm.cli.common import home_of, load_states

    config, states = load_states(args.pipeline, args.profile, home_of(args.home))
    title = f"{config.name} (profile {args.profile or 'default'})"
    fmt = args.format or (SUFFIXES.get(args.output.suffix.lower(), "text") if args.output
                          else "text")
    if fmt == "png":
        if args.output is None:
            raise UserError("--format png needs -o FILE.png")
        render_png(states, title, args.output)
        print(f"wrote {args.output}")
        return 0
    text = {"text": format_text, "mermaid": format_mermaid, "dot": format_dot}[fmt](
        states, title)
    if args.output is None:
        print(text, end="")
    else:
        args.output.write_text(text)
        print(f"wrote {args.output}")
    return 0


def add_parser(sub, piped: argparse.ArgumentParser) -> None:
    """The subcommand; ``piped``: the parent parser with --home, the pipeline and --profile."""
    dag = sub.add_parser(
        "dag", parents=[piped], help="draw the stage graph, marked cached / stale / missing",
        description="The pipeline's stages and edges, each stage marked cached (up to date), "
        "stale, missing, or unused (not part of this config's job) for this config and home. "
        "Reads the pipeline YAML and the "
        "_SUCCESS.json records under <home>/artifacts/<pipeline>/; writes the graph to stdout, "
        "or to -o FILE (.png: drawn with matplotlib; .dot, .mmd: text). Starts nothing.")
    dag.add_argument("--format", choices=("text", "mermaid", "dot", "png"),
                     help="default: from -o's suffix (.png, .dot, .mmd), else text")
    dag.add_argument("-o", "--output", type=Path, metavar="FILE",
                     help="write here instead of stdout")
    dag.set_defaults(func=_cmd_dag)
