"""A state machine definition as a graph: Mermaid and DOT text, and a laid-out SVG (pure: no I/O).

States are listed in order of first reach from StartAt (breadth first over Next, Choice rules,
Default and Catch), so the picture reads top to bottom the way an execution runs; states no
transition reaches come last. A Parallel state's branches and a Map state's item processor are
drawn as boxed groups inside their state. ASL state names are unique across the whole machine,
nested scopes included, so a state's name identifies its node everywhere (history events, pages).

`to_svg` colours each state by what it did in an execution (`orchestrator.runs.state_runs`,
re-exported here).
"""

from __future__ import annotations

import html
from collections import deque
from dataclasses import dataclass, field

from orchestrator.asl.model import State, StateMachine
from orchestrator.runs import StateRun, state_runs

__all__ = ["StateRun", "layout", "reach_order", "state_runs", "to_dot", "to_mermaid", "to_svg"]

# ------------------------------------------------------------ the graph


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    kind: str = "next"  # next | choice | default | catch
    label: str = ""


def transitions(state: State) -> list[Edge]:
    """Where a state may go next, in the definition's order."""
    edges: list[Edge] = []
    if state.type == "Choice":
        for index, rule in enumerate(state.raw.get("Choices") or ()):
            if isinstance(rule, dict) and isinstance(rule.get("Next"), str):
                edges.append(Edge(state.name, rule["Next"], "choice", f"rule {index + 1}"))
        default = state.raw.get("Default")
        if isinstance(default, str):
            edges.append(Edge(state.name, default, "default", "default"))
    elif state.next:
        edges.append(Edge(state.name, state.next))
    for catcher in state.catch:
        edges.append(Edge(state.name, catcher.next, "catch", "catch " + ", ".join(catcher.error_equals)))
    return edges


def reach_order(machine: StateMachine) -> list[str]:
    """The scope's state names in order of first reach from StartAt; unreachable ones last."""
    seen: list[str] = []
    queue = deque([machine.start_at])
    while queue:
        name = queue.popleft()
        if name in seen or name not in machine.states:
            continue
        seen.append(name)
        queue.extend(edge.target for edge in transitions(machine.states[name]))
    return seen + [name for name in machine.states if name not in seen]


def layers(machine: StateMachine) -> list[list[str]]:
    """The scope's states in rows: a state's row is its breadth-first distance from StartAt."""
    depth: dict[str, int] = {}
    queue = deque([(machine.start_at, 0)])
    while queue:
        name, level = queue.popleft()
        if name in depth or name not in machine.states:
            continue
        depth[name] = level
        queue.extend((edge.target, level + 1) for edge in transitions(machine.states[name]))
    last = max(depth.values(), default=-1)
    for name in machine.states:
        depth.setdefault(name, last + 1)  # unreachable: one row after the rest
    rows: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for name in reach_order(machine):
        rows[depth[name]].append(name)
    return [row for row in rows if row]


def scopes(state: State) -> list[tuple[str, StateMachine]]:
    """A Parallel state's branches or a Map state's processor, each with a label."""
    if state.branches:
        return [(f"Branch {i + 1}", branch) for i, branch in enumerate(state.branches)]
    if state.processor is not None:
        return [("Item processor", state.processor)]
    return []


# ------------------------------------------------------------ Mermaid and DOT


class _Ids:
    """Short identifiers for names Mermaid and DOT cannot take as they are."""

    def __init__(self) -> None:
        self._ids: dict[str, str] = {}

    def __call__(self, name: str) -> str:
        return self._ids.setdefault(name, f"s{len(self._ids)}")


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def to_mermaid(machine: StateMachine) -> str:
    """The definition as a Mermaid flowchart (top-down; Parallel and Map scopes as subgraphs)."""
    ids = _Ids()
    lines = ["flowchart TD", '    start(("start"))', '    finish(("end"))']
    edges: list[str] = [f"    start --> {ids(machine.start_at)}"]
    groups = 0

    def scope(m: StateMachine, indent: str, top: bool) -> None:
        nonlocal groups
        for name in reach_order(m):
            state = m.states[name]
            shape = ('{{"%s"}}' if state.type == "Choice" else '["%s"]') % _mermaid_text(f"{name}<br/>{state.type}")
            lines.append(f"{indent}{ids(name)}{shape}")
            for edge in transitions(state):
                arrow = "-.->" if edge.kind == "catch" else "-->"
                label = f"|{_mermaid_text(edge.label)}|" if edge.label else ""
                edges.append(f"    {ids(name)} {arrow}{label} {ids(edge.target)}")
            if top and (state.end or state.type in ("Succeed", "Fail")):
                edges.append(f"    {ids(name)} --> finish")
            for label, nested in scopes(state):
                groups += 1
                group = f"g{groups}"
                lines.append(f'{indent}subgraph {group}["{_mermaid_text(name + ": " + label)}"]')
                scope(nested, indent + "    ", False)
                lines.append(f"{indent}end")
                edges.append(f"    {ids(name)} -.-> {ids(nested.start_at)}")

    scope(machine, "    ", True)
    return "\n".join(lines + edges) + "\n"


def _dot_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(machine: StateMachine) -> str:
    """The definition as Graphviz DOT (Parallel and Map scopes as clusters)."""
    ids = _Ids()
    lines = ["digraph statemachine {", "    rankdir=TB;", '    node [shape=box, style="rounded", fontname="sans-serif"];',
             '    start [shape=circle, label="start"];', '    finish [shape=doublecircle, label="end"];',
             f"    start -> {ids(machine.start_at)};"]
    groups = 0

    def scope(m: StateMachine, indent: str, top: bool) -> None:
        nonlocal groups
        for name in reach_order(m):
            state = m.states[name]
            shape = ", shape=diamond" if state.type == "Choice" else ""
            lines.append(f"{indent}{ids(name)} [label={_dot_text(name + chr(10) + state.type)}{shape}];")
            for edge in transitions(state):
                style = ", style=dashed" if edge.kind == "catch" else ""
                label = f"label={_dot_text(edge.label)}" if edge.label else ""
                attrs = ", ".join(a for a in (label, style.lstrip(", ")) if a)
                lines.append(f"{indent}{ids(name)} -> {ids(edge.target)}" + (f" [{attrs}]" if attrs else "") + ";")
            if top and (state.end or state.type in ("Succeed", "Fail")):
                lines.append(f"{indent}{ids(name)} -> finish;")
            for label, nested in scopes(state):
                groups += 1
                lines.append(f"{indent}subgraph cluster_{groups} {{")
                lines.append(f"{indent}    label={_dot_text(name + ': ' + label)}; style=dashed;")
                scope(nested, indent + "    ", False)
                lines.append(f"{indent}}}")
                lines.append(f"{indent}{ids(name)} -> {ids(nested.start_at)} [style=dotted];")

    scope(machine, "    ", True)
    return "\n".join(lines) + "\n}\n"


# ------------------------------------------------------------ SVG layout

NODE_W, NODE_H = 170, 44
GAP_X, GAP_Y, PAD = 28, 42, 14
HEADER = 26  # a group's title bar


@dataclass
class Box:
    """A laid-out state (`group` False) or group frame, positions relative to the picture."""

    name: str
    type: str
    x: float
    y: float
    w: float
    h: float
    group: bool = False
    label: str = ""


@dataclass
class Layout:
    width: float
    height: float
    boxes: list[Box] = field(default_factory=list)
    edges: list[tuple[Box, Box, Edge]] = field(default_factory=list)


def _size(machine: StateMachine) -> tuple[float, float]:
    rows = layers(machine)
    widths = [sum(_state_size(machine.states[n])[0] for n in row) + GAP_X * (len(row) - 1) for row in rows]
    heights = [max(_state_size(machine.states[n])[1] for n in row) for row in rows]
    return max(widths, default=NODE_W), sum(heights) + GAP_Y * max(len(rows) - 1, 0)


def _state_size(state: State) -> tuple[float, float]:
    nested = scopes(state)
    if not nested:
        return NODE_W, NODE_H
    sizes = [_size(m) for _, m in nested]
    inner_w = sum(w + 2 * PAD for w, _ in sizes) + GAP_X * (len(sizes) - 1)
    inner_h = max(h + 2 * PAD + HEADER for _, h in sizes)
    return max(NODE_W, inner_w + 2 * PAD), NODE_H + inner_h + PAD


def layout(machine: StateMachine) -> Layout:
    """A layered layout: rows by distance from StartAt, nested scopes boxed inside their state."""
    width, height = _size(machine)
    result = Layout(width + 2 * PAD, height + 2 * PAD)
    placed: dict[str, Box] = {}
    all_edges: list[Edge] = []

    def place(m: StateMachine, x0: float, y0: float, width: float) -> None:
        y = y0
        for row in layers(m):
            sizes = [_state_size(m.states[n]) for n in row]
            row_w = sum(w for w, _ in sizes) + GAP_X * (len(row) - 1)
            x = x0 + (width - row_w) / 2
            for name, (w, h) in zip(row, sizes):
                state = m.states[name]
                box = Box(name, state.type, x, y, w, h)
                result.boxes.append(box)
                placed[name] = box
                all_edges.extend(transitions(state))
                nested = scopes(state)
                if nested:
                    nested_sizes = [_size(s) for _, s in nested]
                    inner_w = sum(sw + 2 * PAD for sw, _ in nested_sizes) + GAP_X * (len(nested) - 1)
                    gx = x + (w - inner_w) / 2
                    for (label, scope), (sw, sh) in zip(nested, nested_sizes):
                        frame = Box(f"{name}/{label}", "group", gx, y + NODE_H + PAD, sw + 2 * PAD,
                                    sh + 2 * PAD + HEADER, group=True, label=label)
                        result.boxes.append(frame)
                        place(scope, gx + PAD, frame.y + HEADER + PAD, sw)
                        gx += sw + 2 * PAD + GAP_X
                x += w + GAP_X
            y += max(h for _, h in sizes) + GAP_Y

    place(machine, PAD, PAD, width)
    result.edges = [(placed[e.source], placed[e.target], e) for e in all_edges
                    if e.source in placed and e.target in placed]
    return result


def to_svg(machine: StateMachine, runs: dict[str, StateRun] | None = None) -> str:
    """The laid-out graph as SVG; each state is a `<g class="state status-..." data-state=NAME>`."""
    runs = runs or {}
    shape = layout(machine)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" width="{shape.width:.0f}" '
           f'height="{shape.height:.0f}" viewBox="0 0 {shape.width:.0f} {shape.height:.0f}">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#667"/></marker></defs>']
    # Frames and state boxes first, a parent's state box drawn under its groups.
    for box in shape.boxes:
        name = html.escape(box.name, quote=True)
        if box.group:
            out.append(f'<g class="group"><rect x="{box.x:.0f}" y="{box.y:.0f}" width="{box.w:.0f}" '
                       f'height="{box.h:.0f}" rx="6"/><text x="{box.x + 8:.0f}" y="{box.y + 17:.0f}">'
                       f"{html.escape(box.label)}</text></g>")
            continue
        status = runs[box.name].status.lower() if box.name in runs else "not-run"
        height = NODE_H if box.h > NODE_H else box.h
        container = " container" if box.h > NODE_H else ""
        out.append(f'<g class="state status-{status}{container}" data-state="{name}" tabindex="0">'
                   f'<rect class="frame" x="{box.x:.0f}" y="{box.y:.0f}" width="{box.w:.0f}" height="{box.h:.0f}" rx="8"/>'
                   f'<rect class="head" x="{box.x:.0f}" y="{box.y:.0f}" width="{box.w:.0f}" height="{height:.0f}" rx="8"/>'
                   f'<text class="name" x="{box.x + box.w / 2:.0f}" y="{box.y + 19:.0f}">{html.escape(box.name)}</text>'
                   f'<text class="type" x="{box.x + box.w / 2:.0f}" y="{box.y + 35:.0f}">{html.escape(box.type)}</text></g>')
    for source, target, edge in shape.edges:
        x1, y1 = source.x + source.w / 2, source.y + (source.h if target.y > source.y else 0)
        x2, y2 = target.x + target.w / 2, target.y + (0 if target.y > source.y else target.h)
        if target.y <= source.y:  # a loop back: leave from the side so it does not cross the box
            x1, y1 = source.x + source.w, source.y + NODE_H / 2
            x2, y2 = target.x + target.w, target.y + NODE_H / 2
            path = f"M {x1:.0f} {y1:.0f} C {x1 + 60:.0f} {y1:.0f}, {x2 + 60:.0f} {y2:.0f}, {x2:.0f} {y2:.0f}"
        else:
            mid = (y1 + y2) / 2
            path = f"M {x1:.0f} {y1:.0f} C {x1:.0f} {mid:.0f}, {x2:.0f} {mid:.0f}, {x2:.0f} {y2:.0f}"
        title = f"<title>{html.escape(edge.label)}</title>" if edge.label else ""
        out.append(f'<path class="edge {edge.kind}" d="{path}" marker-end="url(#arrow)">{title}</path>')
    out.append("</svg>")
    return "".join(out)
