#!/usr/bin/env python3
"""Fails on an import cycle between the agent's modules.

Every file under agent/src is a module (foo.rs and foo/mod.rs are `foo`,
foo/bar.rs is `foo::bar`). A module depends on another when it names it
through `crate::` (in a `use` or inline) or, inside a directory, through
`super::`. Code under `#[cfg(test)]` is left out: tests may reach across.
The binaries under agent/src/bin are left out: they stand on top.

Then, module by module: dependencies must form no cycle, so the layers
point one way. On a cycle it prints the cycle, each edge with the file and
line that makes it, and exits 1.

Leaves (LEAVES) must import nothing of the project.

Usage: build/layers.py [--graph] [--self-test]
  --graph prints every edge; --self-test then reverses each edge in turn
  and fails unless the check reports the cycle it makes.
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SRC = ROOT / "agent" / "src"


def module_of(path):
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "mod":
        parts.pop()
    if parts in (["lib"], ["main"]):
        return parts[0]
    return "::".join(parts)


def strip_tests(text):
    """The text without `#[cfg(test)]` items (a module or function: the
    attribute, then everything to the matching closing brace)."""
    out = []
    i = 0
    while True:
        m = re.search(r"#\[cfg\(test\)\]", text[i:])
        if not m:
            out.append(text[i:])
            break
        start = i + m.start()
        out.append(text[i:start])
        brace = text.find("{", start)
        semi = text.find(";", start)
        if brace == -1 or (semi != -1 and semi < brace):
            i = semi + 1  # `#[cfg(test)] use ...;` or `mod tests;`
            continue
        depth = 0
        j = brace
        while j < len(text):
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        i = j + 1
    return "".join(out)


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def resolve(path, modules):
    """The longest known module that `path` (a::b::c) names."""
    parts = path.split("::")
    while parts:
        m = "::".join(parts)
        if m in modules:
            return m
        parts.pop()
    return None


def edges_of(mod, text, modules):
    found = {}
    parent = mod.rsplit("::", 1)[0] if "::" in mod else None
    for n, line in enumerate(text.splitlines(), 1):
        for m in re.finditer(r"\bcrate::((?:[a-z_][a-z0-9_]*)(?:::[a-z_][a-z0-9_]*)*)", line):
            target = resolve(m.group(1), modules)
            if target:
                found.setdefault(target, n)
        # `use crate::{a, b::c}` groups
        for m in re.finditer(r"\bcrate::\{([^}]*)\}", line):
            for item in m.group(1).split(","):
                target = resolve(item.strip().split(" ")[0], modules)
                if target:
                    found.setdefault(target, n)
        if parent:
            for m in re.finditer(r"\bsuper::((?:[a-z_][a-z0-9_]*)(?:::[a-z_][a-z0-9_]*)*)", line):
                target = resolve(parent + "::" + m.group(1), modules) or parent
                found.setdefault(target, n)
    return found


def top(mod):
    return mod.split("::")[0]


def find_cycle(graph):
    """A cycle as a list of nodes, or None (iterative DFS, white/grey/black)."""
    colour = {n: 0 for n in graph}
    for start in sorted(graph):
        if colour[start]:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        colour[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                colour[node] = 2
                stack.pop()
                path.pop()
                continue
            if colour.get(nxt, 0) == 1:
                return path[path.index(nxt):] + [nxt]
            if colour.get(nxt, 0) == 0:
                colour[nxt] = 1
                stack.append((nxt, iter(sorted(graph.get(nxt, ())))))
                path.append(nxt)
    return None


# Leaves: they import nothing of the project, so anything may use them.
LEAVES = ["abi", "clock", "interface_filter", "kernel", "lists", "netif", "probes", "process", "prom", "rates", "units"]


def check(graph, where):
    """Error lines: a cycle, or a leaf that imports the project."""
    errors = []
    cycle = find_cycle(graph)
    if cycle:
        errors.append("the agent's modules import each other in a cycle:")
        errors += [f"  {a} -> {b}    {where[(a, b)]}" for a, b in zip(cycle, cycle[1:])]
    for leaf in LEAVES:
        for b in sorted(graph.get(leaf, ())):
            errors.append(f"leaf {leaf} imports {b}: {where[(leaf, b)]}")
    return errors


def self_test(graph, where):
    """Reverses each edge in turn: every one must make a cycle the check
    reports, or the check could not catch a reintroduced edge."""
    edges = [(a, b) for a in graph for b in graph[a]]
    for a, b in edges:
        g = {k: set(v) for k, v in graph.items()}
        g[b].add(a)
        w = dict(where)
        w[(b, a)] = "(reversed for the self-test)"
        if not any("cycle" in e for e in check(g, w)):
            print(f"build/layers.py: self-test: reversing {a} -> {b} went unnoticed", file=sys.stderr)
            return 1
    print(f"layers: self-test: each of {len(edges)} imports, reversed, makes a cycle the check reports")
    return 0


def main():
    files = [p for p in SRC.rglob("*.rs") if "bin" not in p.relative_to(SRC).parts]
    modules = {module_of(p): p for p in files}
    # Module-level edges (a file's own module to what it names), then the
    # same collapsed onto top-level modules: `detect::engine` depending on
    # `collector` makes `detect` depend on `collector`.
    where = {}
    graph = {}
    for mod, path in modules.items():
        if mod in ("lib", "main"):
            continue
        text = strip_tests(strip_comments(path.read_text()))
        for target, line in edges_of(mod, text, modules).items():
            a, b = top(mod), top(target)
            if a == b or b in ("lib", "main"):
                continue
            graph.setdefault(a, set()).add(b)
            graph.setdefault(b, set())
            where.setdefault((a, b), f"{path.relative_to(ROOT)}:{line} ({mod} -> {target})")
    if "--graph" in sys.argv:
        for (a, b), w in sorted(where.items()):
            print(f"{a} -> {b}    {w}")
    errors = check(graph, where)
    if errors:
        for e in errors:
            print(f"build/layers.py: {e}", file=sys.stderr)
        print("Imports must point one way (entry -> orchestration -> domains -> leaves).", file=sys.stderr)
        return 1
    print(f"layers: {len(graph)} modules, {sum(len(v) for v in graph.values())} imports, no cycle, leaves import nothing")
    if "--self-test" in sys.argv:
        return self_test(graph, where)
    return 0


if __name__ == "__main__":
    sys.exit(main())
