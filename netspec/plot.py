"""The charts of ``netspec compare --plot``, one labelled bubble per model, coloured by the zoo
catalogue's family (with a legend), smaller bubbles drawn over larger ones and every centre
marked, so no model hides another:

- the efficiency chart (``--y params``, the default): MACs against parameters on log axes,
  bubble area proportional to measured latency (``--bench``) or to peak activation memory;
- the accuracy charts (``--y top1``): published ImageNet top-1 accuracy against MACs (``--x
  macs``) or against measured latency (``--x latency``, with ``--bench``) on a log axis, bubble
  area proportional to parameters — the survey chart of Canziani et al. 2016. Models without a
  published top-1 are left out of them.

matplotlib is the optional extra ``[plot]``; it is imported only here, and only through its
object API (no pyplot global state)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netspec.diagnostics import UsageError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.backend_bases import RendererBase
    from matplotlib.figure import Figure

    from netspec.compare import CompareRow

INSTALL_HINT = "pip install 'netspec-compiler[plot]'"
PLOT_FORMATS = (".png", ".svg", ".pdf")
PLOT_X = ("macs", "latency")
PLOT_Y = ("params", "top1")

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


def check_plot_axes(x: str, y: str, benched: bool) -> None:
    """Raise a UsageError for a chart that cannot be drawn: an unknown axis, latency without
    measurements, or parameters against latency (the efficiency chart's x is MACs)."""
    if x not in PLOT_X:
        raise UsageError(f"--x is one of {', '.join(PLOT_X)}, not '{x}'")
    if y not in PLOT_Y:
        raise UsageError(f"--y is one of {', '.join(PLOT_Y)}, not '{y}'")
    if x == "latency" and not benched:
        raise UsageError("--x latency plots measured latency: add --bench")
    if x == "latency" and y == "params":
        raise UsageError("--x latency goes with --y top1 (the efficiency chart plots params against MACs)")


def family_of(row: CompareRow) -> str:
    """The family that colours a row's bubble: the zoo catalogue's, else from the model's name."""
    return row.family or _family(row.name)


def _latency(row: CompareRow) -> float:
    """A benched row's median latency (a chart of latency draws only benched rows)."""
    assert row.latency_ms is not None, row.name
    return row.latency_ms


def _top1(row: CompareRow) -> float:
    """A row's published top-1 (an accuracy chart draws only the rows that have one)."""
    assert row.top1 is not None, row.name
    return row.top1


def plotted_rows(rows: Sequence[CompareRow], y: str) -> tuple[list[CompareRow], list[str]]:
    """The rows a chart with ``y`` draws, and the names of those it leaves out (no published
    top-1 for an accuracy chart). A UsageError when none is left."""
    if y != "top1":
        return list(rows), []
    kept = [row for row in rows if row.top1 is not None]
    left_out = [row.name for row in rows if row.top1 is None]
    if not kept:
        raise UsageError(
            "--y top1: none of these models has a published ImageNet top-1 (netspec zoo lists them)"
        )
    return kept, left_out


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


def _coincident(points: Sequence[tuple[float, float]], radii: Sequence[float]) -> list[list[int]]:
    """Groups of bubbles that would hide each other (display coordinates, pixels): bubbles
    whose centres lie within a third of the smaller radius and whose radii differ by less
    than a fifth, joined transitively; each group in index order, groups of two or more."""
    parent = list(range(len(points)))

    def root(index: int) -> int:
        while parent[index] != index:
            index = parent[index]
        return index

    for first in range(len(points)):
        for second in range(first + 1, len(points)):
            small, large = sorted((radii[first], radii[second]))
            if math.dist(points[first], points[second]) < small / 3 and small > 0.8 * large:
                parent[root(second)] = root(first)
    groups: dict[int, list[int]] = {}
    for index in range(len(points)):
        groups.setdefault(root(index), []).append(index)
    return [group for group in groups.values() if len(group) > 1]


def _draw_bubbles(
    axes: Axes, points: Sequence[tuple[float, float]], radii: Sequence[float], colours: Sequence[Any]
) -> None:
    """The bubbles, radii in points: larger first, so a smaller one at (nearly) the same place
    sits on top of a larger one; bubbles of (nearly) the same size at (nearly) the same place
    (FCN-8s, FCN-16s, FCN-32s and Faster R-CNN) share the circle, one sector each in its
    colour."""
    from matplotlib.path import Path as MarkerPath

    scale = axes.figure.dpi / 72.0
    centres = [tuple(axes.transData.transform(point)) for point in points]
    markers: dict[int, Any] = {}
    for group in _coincident(centres, [r * scale for r in radii]):
        step = 360.0 / len(group)
        for rank, index in enumerate(group):
            # A unit-circle sector: as a marker it is scaled as the full circle would be.
            markers[index] = MarkerPath.wedge(90.0 + rank * step, 90.0 + (rank + 1) * step)
    order = sorted(range(len(points)), key=lambda i: -radii[i])
    for rank, index in enumerate(order):
        axes.plot(
            [points[index][0]],
            [points[index][1]],
            linestyle="",
            marker=markers.get(index, "o"),
            markersize=2 * radii[index],
            markerfacecolor=colours[index],
            markeredgecolor="black",
            markeredgewidth=0.7,
            alpha=0.55,
            zorder=3 + rank / (10 * len(points)),
        )


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


def plot_efficiency(
    rows: Sequence[CompareRow], output: str | os.PathLike[str], x: str = "macs", y: str = "params"
) -> None:
    """Write the chart of compare ``rows`` with axes ``x`` and ``y`` (the efficiency chart by
    default) to ``output`` (atomically), as PNG, SVG or PDF by its extension."""
    from netspec.output import write_atomic_with

    figure = efficiency_figure(rows) if y == "params" else accuracy_figure(rows, x)
    kind = Path(output).suffix.lower().lstrip(".")
    write_atomic_with(output, lambda handle: figure.savefig(handle, format=kind))


def efficiency_figure(rows: Sequence[CompareRow]) -> Figure:
    """The efficiency chart of compare ``rows`` (their ``macs``, ``params``, ``batch``,
    ``peak_activation_bytes``, ``family`` when catalogued, and ``latency_ms`` and ``device``
    when benched), labels placed. Bubble area is the measured median latency when every row
    has it, else peak activation memory."""
    from netspec.tables import human_bytes

    benched = all(row.measured for row in rows)
    batch = rows[0].batch
    if benched:
        measure = f"median onnxruntime latency on {rows[0].device}"
    else:
        measure = f"peak live activation memory (float32, batch {batch})"
    return _bubble_chart(
        rows,
        points=[(row.macs, row.params) for row in rows],
        sizes=[_latency(row) if benched else row.peak_activation_bytes for row in rows],
        size_text=(lambda value: f"{value:.3g} ms") if benched else (lambda value: human_bytes(int(value))),
        size_title="latency" if benched else "peak activations",
        x_label=f"compute: multiply-accumulates (MACs) per forward pass at batch {batch}, log scale",
        y_label="size: learnable parameters, log scale",
        title=(
            f"Efficiency of {len(rows)} models: compute against size\n"
            f"bubble area ∝ {measure}; colour: model family"
        ),
        log_y=True,
    )


def accuracy_figure(rows: Sequence[CompareRow], x: str = "macs") -> Figure:
    """Published ImageNet top-1 accuracy against MACs (``x`` ``macs``) or measured median
    latency (``latency``) on a log axis, bubble area ∝ parameters, for the ``rows`` with a
    ``top1``; labels placed."""
    from netspec.tables import human_count

    rows = [row for row in rows if row.top1 is not None]
    batch = rows[0].batch
    if x == "latency":
        points = [(_latency(row), _top1(row)) for row in rows]
        x_label = f"median onnxruntime latency on {rows[0].device} at batch {batch}, ms, log scale"
        against = "measured latency"
    else:
        points = [(row.macs, _top1(row)) for row in rows]
        x_label = f"compute: multiply-accumulates (MACs) per forward pass at batch {batch}, log scale"
        against = "compute"
    return _bubble_chart(
        rows,
        points=points,
        sizes=[row.params for row in rows],
        size_text=lambda value: human_count(int(value)),
        size_title="parameters",
        x_label=x_label,
        y_label="published ImageNet-1k top-1 accuracy, %",
        title=(
            f"Accuracy of {len(rows)} models against {against}\n"
            "bubble area ∝ parameters; colour: model family; top-1 as published (netspec zoo: sources)"
        ),
        log_y=False,
        x_counts=x != "latency",
    )


def _bubble_chart(
    rows: Sequence[CompareRow],
    *,
    points: Sequence[tuple[float, float]],
    sizes: Sequence[float],
    size_text: Callable[[float], str],
    size_title: str,
    x_label: str,
    y_label: str,
    title: str,
    log_y: bool,
    x_counts: bool = True,
) -> Figure:
    """One bubble per row at ``points`` (x on a log axis), area ∝ ``sizes``, coloured by family
    with a family legend beside the axes and a size legend inside; larger bubbles are drawn
    first and every centre is marked, so a bubble never hides another; labels placed."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import EngFormatter, FuncFormatter

    areas = _bubble_areas(sizes)
    families = sorted({family_of(row) for row in rows})
    tab20 = colormaps["tab20"].colors
    palette = (*tab20[0::2], *tab20[1::2])  # the ten strong colours first, then their light pairs
    colour = {family: palette[i % len(palette)] for i, family in enumerate(families)}

    figure = Figure(figsize=(13, 8.5), dpi=100, layout="constrained")
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.scatter(
        [p[0] for p in points], [p[1] for p in points], s=4, c="black", linewidths=0, zorder=3.5
    )  # the exact point of every model, visible however the bubbles overlap; sets the limits
    axes.set_xscale("log")
    # Counts as 100M, 1G; milliseconds as plain numbers.
    axes.xaxis.set_major_formatter(EngFormatter(sep="") if x_counts else FuncFormatter(lambda v, _: f"{v:g}"))
    if log_y:
        axes.set_yscale("log")
        axes.yaxis.set_major_formatter(EngFormatter(sep=""))
    axes.margins(0.12)
    axes.grid(True, which="major", alpha=0.35)
    axes.grid(True, which="minor", alpha=0.12)
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    axes.set_title(title)

    # Reference bubbles: the largest value and two fractions of it.
    largest = max(sizes) or 1.0
    handles = [
        Line2D(
            [],
            [],
            linestyle="",
            marker="o",
            markersize=math.sqrt(max(MIN_BUBBLE_AREA, MAX_BUBBLE_AREA * fraction)),
            markerfacecolor="none",
            markeredgecolor="grey",
            label=size_text(largest * fraction),
        )
        for fraction in (1.0, 0.25, 0.05)
    ]
    legend = axes.legend(
        handles=handles,
        title=size_title,
        loc="lower right",
        labelspacing=2.2,
        borderpad=1.2,
        handlelength=3.5,
        handletextpad=1.2,
        borderaxespad=1.0,
        frameon=True,
    )
    figure.legend(
        handles=[Patch(facecolor=colour[f], edgecolor="black", alpha=0.5, label=f) for f in families],
        title="family",
        loc="outside right upper",
        frameon=True,
    )

    canvas.draw()  # fixes the layout, so bubbles and labels are measured where they will be drawn
    renderer = canvas.get_renderer()
    axes.set_autoscale_on(False)
    radii = [math.sqrt(a) / 2 for a in areas]
    _draw_bubbles(axes, points, radii, [colour[family_of(row)] for row in rows])
    labels = [row.name for row in rows]
    legend_box = legend.get_window_extent(renderer)
    _place_labels(axes, renderer, points, radii, labels, [tuple(legend_box.extents)])
    return figure
