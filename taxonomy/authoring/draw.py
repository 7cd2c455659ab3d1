"""Draw the tree (or one dataset's part of it) as a picture a person can read: SVG, or PNG through Pillow.

Left-to-right layout: one row per leaf in tree order, each inner concept centred on its children, one column per
depth. Colour says which dataset brought the concept in; a filled dot marks a semantic neuron; with a dataset,
the concepts its labels sit on carry the label's id and name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from hierseg.core.errors import HiersegError
from hierseg.core.io import atomic_write_bytes
from hierseg.taxonomy.neurons import NeuronGraph

SOURCE_COLOURS = {"coco_stuff": "#1f5fa8", "ade20k": "#2e7d32", "cityscapes": "#7b1fa2", "mapillary": "#e65100",
                  "super-class": "#555555"}
ROW, PAD, GAP, FONT = 18, 16, 36, 12


@dataclass(frozen=True)
class Node:
    id: str
    text: str
    x: float
    y: float
    width: float
    colour: str
    neuron: bool
    labelled: bool


def layout(graph: NeuronGraph, dataset: str | None, measure: Callable[[str], float]) -> tuple[list[Node], float, float]:
    """Positions of the drawn concepts; returns the nodes, the picture's width and height."""
    taxonomy = graph.taxonomy
    keep: set[str] | None = None
    names: dict[str, str] = {}
    if dataset is not None:
        space = graph.space(dataset)
        keep = set()
        for value, concept in space.concepts.items():
            if concept is not None:
                keep.update(taxonomy.path(concept))
                names[concept] = f"{value}: {space.names[value]}"

    def kids(cid: str) -> list[str]:
        return [c for c in taxonomy.children(cid) if keep is None or c in keep]

    texts = {cid: f"{cid}  [{names[cid]}]" if cid in names else cid for cid in graph.concepts
             if keep is None or cid in keep}
    widths = {cid: measure(text) for cid, text in texts.items()}
    column: dict[int, float] = {}
    for cid in texts:
        depth = taxonomy[cid].depth
        column[depth] = max(column.get(depth, 0.0), widths[cid])
    x_of, x = {}, PAD + 10.0
    for depth in sorted(column):
        x_of[depth] = x
        x += column[depth] + GAP
    y_of: dict[str, float] = {}
    next_row = [PAD + 2.5 * ROW]  # room for the title and legend

    def place(cid: str) -> float:
        children = kids(cid)
        if not children:
            y_of[cid] = next_row[0]
            next_row[0] += ROW
        else:
            ys = [place(child) for child in children]
            y_of[cid] = (ys[0] + ys[-1]) / 2
        return y_of[cid]

    place(taxonomy.root)
    active = graph.mask(dataset).active if dataset is not None else None

    def is_neuron(cid: str) -> bool:  # with a dataset: a neuron that dataset supervises
        return cid in graph.index and (active is None or bool(active[graph.index[cid]]))

    nodes = [Node(cid, texts[cid], x_of[taxonomy[cid].depth], y_of[cid], widths[cid],
                  SOURCE_COLOURS.get(taxonomy[cid].source, "#000000"), is_neuron(cid), cid in names)
             for cid in texts]
    return nodes, x, next_row[0] + PAD


def _edges(graph: NeuronGraph, nodes: list[Node]) -> list[tuple[tuple[float, float], ...]]:
    """Elbow connectors from each parent's text to each child's dot."""
    by_id = {n.id: n for n in nodes}
    out = []
    for node in nodes:
        parent = graph.taxonomy[node.id].parent
        if parent is None or parent not in by_id:
            continue
        p = by_id[parent]
        mid = node.x - 10 - GAP / 2
        out.append(((p.x + p.width + 3, p.y), (mid, p.y), (mid, node.y), (node.x - 10, node.y)))
    return out


def _title(graph: NeuronGraph, dataset: str | None, nodes: list[Node]) -> str:
    if dataset:
        what, dot = f"{dataset}: the concepts on the paths to its labels", f"neuron {dataset} supervises"
    else:
        what, dot = "the concept tree", "semantic neuron"
    neurons = sum(n.neuron for n in nodes)
    return f"hierseg {what} ({len(nodes)} concepts, {neurons} neurons; filled dot = {dot})"


def render_svg(graph: NeuronGraph, dataset: str | None = None) -> bytes:
    nodes, width, height = layout(graph, dataset, lambda text: 0.62 * FONT * len(text))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
             f'font-family="DejaVu Sans, Arial, sans-serif" font-size="{FONT}">',
             '<rect width="100%" height="100%" fill="white"/>',
             f'<text x="{PAD}" y="{PAD + FONT}" font-weight="bold">{escape(_title(graph, dataset, nodes))}</text>']
    x = PAD
    for source, colour in SOURCE_COLOURS.items():
        parts.append(f'<text x="{x}" y="{PAD + FONT + ROW}" fill="{colour}">{source}</text>')
        x += 0.62 * FONT * len(source) + 24
    for points in _edges(graph, nodes):
        coords = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        parts.append(f'<polyline points="{coords}" fill="none" stroke="#999999" stroke-width="1"/>')
    for n in nodes:
        fill = n.colour if n.neuron else "white"
        parts.append(f'<circle cx="{n.x - 6:.1f}" cy="{n.y:.1f}" r="3.5" fill="{fill}" stroke="{n.colour}"/>')
        weight = ' font-weight="bold"' if n.labelled else ""
        parts.append(f'<text x="{n.x:.1f}" y="{n.y + FONT / 3:.1f}" fill="{n.colour}"{weight}>{escape(n.text)}'
                     f'<title>{escape(graph.taxonomy[n.id].definition or n.id)}</title></text>')
    parts.append("</svg>")
    return ("\n".join(parts) + "\n").encode()


def render_png(graph: NeuronGraph, dataset: str | None = None) -> bytes:
    import io

    from PIL import Image, ImageDraw, ImageFont

    try:
        font = ImageFont.load_default(size=FONT)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        font = ImageFont.load_default()
    nodes, width, height = layout(graph, dataset, lambda text: float(font.getlength(text)))
    image = Image.new("RGB", (int(width), int(height)), "white")
    draw = ImageDraw.Draw(image)
    draw.text((PAD, PAD), _title(graph, dataset, nodes), fill="black", font=font)
    x = float(PAD)
    for source, colour in SOURCE_COLOURS.items():
        draw.text((x, PAD + ROW), source, fill=colour, font=font)
        x += font.getlength(source) + 24
    for points in _edges(graph, nodes):
        draw.line(points, fill="#999999", width=1)
    for n in nodes:
        draw.ellipse((n.x - 9.5, n.y - 3.5, n.x - 2.5, n.y + 3.5), fill=n.colour if n.neuron else "white",
                     outline=n.colour)
        if isinstance(font, ImageFont.FreeTypeFont):
            draw.text((n.x, n.y), n.text, fill=n.colour, font=font, anchor="lm")
        else:
            draw.text((n.x, n.y - 6), n.text, fill=n.colour, font=font)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def draw_tree(graph: NeuronGraph, out: str | Path, dataset: str | None = None) -> Path:
    """Render to ``out``; the suffix (``.svg`` or ``.png``) picks the format. Written atomically."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix == ".svg":
        data = render_svg(graph, dataset)
    elif suffix == ".png":
        data = render_png(graph, dataset)
    else:
        raise HiersegError(f"{out}: cannot draw to {suffix or 'a file without suffix'}; use .svg or .png")
    return atomic_write_bytes(out, data)
