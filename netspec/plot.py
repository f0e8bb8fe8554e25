"""The efficiency chart of ``netspec compare --plot``: MACs against parameters on log axes, one
labelled bubble per model, bubble area proportional to measured latency or to peak activation
memory. matplotlib is the optional extra ``[plot]``; it is imported only here, and only through
its object API (no pyplot global state)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netspec.diagnostics import UsageError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.backend_bases import RendererBase
    from matplotlib.figure import Figure

INSTALL_HINT = "pip install 'netspec[plot]'"
PLOT_FORMATS = (".png", ".svg", ".pdf")

# The largest bubble's area in points², and the smallest any bubble gets (so tiny models stay
# visible); areas in between are proportional to the value.
MAX_BUBBLE_AREA = 2400.0
MIN_BUBBLE_AREA = 30.0
# Label offsets tried around a bubble, in points beyond its radius, nearest first.
LABEL_GAPS = (3.0, 12.0, 24.0, 40.0, 60.0, 84.0, 112.0, 144.0)
LABEL_DIRECTIONS = (0, 30, 330, 180, 150, 210, 60, 300, 120, 240, 90, 270)
# Free space kept around bubbles (points) and label boxes (pixels) when placing labels.
BUBBLE_MARGIN = 5.0
LABEL_PADDING = 2.0  # pixels
LABEL_FONT_SIZE = 8.5
# The cost of a leader line crossing a label, a bubble or another leader, in the units of
# overlap (pixels²): a crossing weighs as much as a small overlap.
CROSSING_COST = 400.0


def check_plot_output(output: str | os.PathLike[str]) -> None:
    """Fail early, before any work, when the chart cannot be written: matplotlib missing, an
    unknown file type, or a folder that does not exist."""
    path = Path(output)
    if path.suffix.lower() not in PLOT_FORMATS:
        raise UsageError(f"--plot writes {', '.join(PLOT_FORMATS)} files, not '{path.name}'")
    if not path.parent.is_dir():
        raise UsageError(f"--plot: no such folder: {path.parent}")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(f"--plot needs matplotlib, which is not installed: {INSTALL_HINT}") from None


def _family(name: str) -> str:
    """The model family that colours a bubble: 'ResNet-50' -> 'ResNet', 'VGG-16' -> 'VGG'."""
    return name.split("-")[0].split(" ")[0]


def _bubble_areas(values: Sequence[float]) -> list[float]:
    largest = max(values) or 1.0
    return [max(MIN_BUBBLE_AREA, MAX_BUBBLE_AREA * v / largest) for v in values]


Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in display pixels


def _overlap(box: Box, others: Sequence[Box]) -> float:
    """The total area ``box`` shares with ``others`` (display pixels²)."""
    total = 0.0
    for other in others:
        width = min(box[2], other[2]) - max(box[0], other[0])
        height = min(box[3], other[3]) - max(box[1], other[1])
        if width > 0 and height > 0:
            total += width * height
    return total


def _direction(angle: int) -> tuple[float, float]:
    """The unit vector of ``angle`` degrees (anticlockwise from the right), with exact zeros."""
    dx, dy = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    return (0.0 if abs(dx) < 1e-9 else dx), (0.0 if abs(dy) < 1e-9 else dy)


def _alignment(angle: int) -> tuple[str, str]:
    """Text alignment that makes a label grow away from its bubble."""
    dx, dy = _direction(angle)
    horizontal = "left" if dx > 0 else "right" if dx < 0 else "center"
    vertical = "bottom" if dy > 0 else "top" if dy < 0 else "center"
    return horizontal, vertical


def _label_box(centre: tuple[float, float], size: tuple[float, float], distance: float, angle: int) -> Box:
    """The display box of a label of ``size`` pixels anchored ``distance`` pixels from a bubble's
    ``centre`` in direction ``angle``, aligned as :func:`_alignment` says."""
    dx, dy = _direction(angle)
    x, y = centre[0] + distance * dx, centre[1] + distance * dy
    width, height = size
    x0 = x if dx > 0 else x - width if dx < 0 else x - width / 2
    y0 = y if dy > 0 else y - height if dy < 0 else y - height / 2
    return (x0 - LABEL_PADDING, y0 - LABEL_PADDING, x0 + width + LABEL_PADDING, y0 + height + LABEL_PADDING)


Segment = tuple[tuple[float, float], tuple[float, float]]


def _crosses_box(segment: Segment, box: Box, samples: int = 16) -> bool:
    """Whether ``segment`` passes through ``box`` (tested at evenly spaced points)."""
    (x0, y0), (x1, y1) = segment
    for step in range(1, samples):
        t = step / samples
        x, y = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
        if box[0] < x < box[2] and box[1] < y < box[3]:
            return True
    return False


def _segments_cross(first: Segment, second: Segment) -> bool:
    def turn(a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]) -> float:
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    (a, b), (c, d) = first, second
    return turn(a, b, c) * turn(a, b, d) < 0 and turn(c, d, a) * turn(c, d, b) < 0


def _place_labels(
    axes: Axes,
    renderer: RendererBase,
    points: Sequence[tuple[float, float]],
    radii: Sequence[float],
    labels: Sequence[str],
    obstacles: Sequence[Box] = (),
) -> None:
    """Label every bubble, greedily: for each (largest bubbles first, as they have the fewest
    good places), the nearest offset — twelve directions, growing gaps — whose text box overlaps
    no placed label, no other bubble with its margin, and stays inside the axes; where none is
    free, the offset with the least overlap. Labels set off their bubble get a leader line.
    ``obstacles`` (the legend) are avoided like placed labels."""
    scale = axes.figure.dpi / 72.0  # display pixels per point
    centres = [tuple(axes.transData.transform(point)) for point in points]
    # NOTE: a label that nearly touches another bubble reads as that bubble's label, so
    # bubbles keep a margin free around them.
    margins = [(r + BUBBLE_MARGIN) * scale for r in radii]
    bubbles = [(x - m, y - m, x + m, y + m) for (x, y), m in zip(centres, margins, strict=True)]
    frame = axes.get_window_extent(renderer)
    placed = list(obstacles)
    leaders: list[Segment] = []
    for index in sorted(range(len(points)), key=lambda i: -radii[i]):
        probe = axes.text(0, 0, labels[index], fontsize=LABEL_FONT_SIZE)
        extent = probe.get_window_extent(renderer)
        probe.remove()
        size = (extent.width, extent.height)
        others = bubbles[:index] + bubbles[index + 1 :]
        best: tuple[float, float, int, Box, Segment | None] | None = None
        for gap in LABEL_GAPS:
            for angle in LABEL_DIRECTIONS:
                box = _label_box(centres[index], size, (radii[index] + gap) * scale, angle)
                inside = (
                    frame.x0 <= box[0] and frame.y0 <= box[1] and box[2] <= frame.x1 and box[3] <= frame.y1
                )
                cost = 4 * _overlap(box, placed) + _overlap(box, others) + (0 if inside else 1e9)
                cost += CROSSING_COST * sum(_crosses_box(other, box) for other in leaders)
                leader = None
                if gap > LABEL_GAPS[0]:
                    dx, dy = _direction(angle)
                    start = radii[index] * scale
                    end = (radii[index] + gap) * scale
                    cx, cy = centres[index]
                    leader = ((cx + start * dx, cy + start * dy), (cx + end * dx, cy + end * dy))
                    crossings = sum(_crosses_box(leader, b) for b in (*placed, *others))
                    crossings += sum(_segments_cross(leader, other) for other in leaders)
                    cost += CROSSING_COST * crossings
                if best is None or cost < best[0]:
                    best = (cost, gap, angle, box, leader)
                if cost == 0:
                    break
            if best is not None and best[0] == 0:
                break
        assert best is not None
        _, gap, angle, box, leader = best
        placed.append(box)
        if leader is not None:
            leaders.append(leader)
        distance = radii[index] + gap
        dx, dy = _direction(angle)
        horizontal, vertical = _alignment(angle)
        axes.annotate(
            labels[index],
            points[index],
            xytext=(distance * dx, distance * dy),
            textcoords="offset points",
            ha=horizontal,
            va=vertical,
            fontsize=LABEL_FONT_SIZE,
            zorder=4,
            arrowprops=dict(arrowstyle="-", color="0.3", linewidth=0.7, shrinkA=0, shrinkB=radii[index])
            if leader is not None
            else None,
        )


def plot_efficiency(rows: Sequence[dict[str, Any]], output: str | os.PathLike[str]) -> None:
    """Write the efficiency chart of compare ``rows`` to ``output`` (atomically), as PNG, SVG
    or PDF by its extension."""
    from netspec.output import write_atomic_with

    figure = efficiency_figure(rows)
    kind = Path(output).suffix.lower().lstrip(".")
    write_atomic_with(output, lambda handle: figure.savefig(handle, format=kind))


def efficiency_figure(rows: Sequence[dict[str, Any]]) -> Figure:
    """The efficiency chart of compare ``rows`` (keys ``name``, ``macs``, ``params``, ``batch``,
    ``peak_activation_bytes``, and ``latency_ms`` and ``device`` when benched), labels placed.
    Bubble area is the measured median latency when every row has it, else peak activation
    memory."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import EngFormatter

    from netspec.report import human_bytes

    benched = all("latency_ms" in row for row in rows)
    values = [row["latency_ms"] if benched else row["peak_activation_bytes"] for row in rows]
    areas = _bubble_areas(values)
    families = sorted({_family(row["name"]) for row in rows})
    palette = colormaps["tab20"].colors
    colour = {family: palette[i % len(palette)] for i, family in enumerate(families)}

    figure = Figure(figsize=(12, 8.5), dpi=100, layout="constrained")
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    points = [(row["macs"], row["params"]) for row in rows]
    axes.scatter(
        [p[0] for p in points],
        [p[1] for p in points],
        s=areas,
        c=[colour[_family(row["name"])] for row in rows],
        alpha=0.55,
        edgecolors="black",
        linewidths=0.6,
        zorder=3,
    )
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.xaxis.set_major_formatter(EngFormatter(sep=""))
    axes.yaxis.set_major_formatter(EngFormatter(sep=""))
    axes.margins(0.12)
    axes.grid(True, which="major", alpha=0.35)
    axes.grid(True, which="minor", alpha=0.12)
    batch = rows[0]["batch"]
    axes.set_xlabel(f"compute: multiply-accumulates (MACs) per forward pass at batch {batch}, log scale")
    axes.set_ylabel("size: learnable parameters, log scale")
    if benched:
        measure = f"median onnxruntime latency on {rows[0]['device']}"
    else:
        measure = f"peak live activation memory (float32, batch {batch})"
    axes.set_title(
        f"Efficiency of {len(rows)} models: compute against size\n"
        f"bubble area ∝ {measure}; colour: model family"
    )

    # Reference bubbles: the largest value and two fractions of it.
    largest = max(values) or 1.0
    handles = []
    for fraction in (1.0, 0.25, 0.05):
        value = largest * fraction
        text = f"{value:.3g} ms" if benched else human_bytes(int(value))
        handles.append(
            Line2D(
                [],
                [],
                linestyle="",
                marker="o",
                markersize=math.sqrt(max(MIN_BUBBLE_AREA, MAX_BUBBLE_AREA * fraction)),
                markerfacecolor="none",
                markeredgecolor="grey",
                label=text,
            )
        )
    legend = axes.legend(
        handles=handles,
        title="latency" if benched else "peak activations",
        loc="lower right",
        labelspacing=2.2,
        borderpad=1.2,
        handlelength=3.5,
        handletextpad=1.2,
        borderaxespad=1.0,
        frameon=True,
    )

    canvas.draw()  # fixes the layout, so label boxes are measured where they will be drawn
    renderer = canvas.get_renderer()
    radii = [math.sqrt(a) / 2 for a in areas]
    labels = [row["name"] for row in rows]
    legend_box = legend.get_window_extent(renderer)
    _place_labels(axes, renderer, points, radii, labels, [tuple(legend_box.extents)])
    return figure
