"""The package's structure rules, checked statically (CI runs this through `make test`).

    python scripts/check_structure.py          # print every violation, exit 1 if any

1. No import cycle between modules of the package (imports inside functions count too:
   a deferred import is still a dependency).
2. No module under algorithms/, samplers/, accelerators/, run/, models/, envs/ or
   distributed/ imports actorcritic.training
   (the entry point imports the algorithms, never the other way round).
3. No private name (`_x`) imported from another module.
4. No function longer than 60 lines.
5. No module under run/ imports an algorithm (actorcritic.algorithms or
   actorcritic.distributed):
   the loop, the session and the checkpoints serve every algorithm and know none.
6. The seam between samplers and learners is typed: no annotation in the modules that
   define it (SEAM_MODULES: the loop's Sampler and Learner, Collected and what it holds)
   says `Any`.
7. No module outside run/ and training.py assigns an attribute of the run's session
   (`session.x = ...`, `self.session.x = ...`): algorithms call RunSession's methods.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "actorcritic"
LOWER = ("algorithms", "samplers", "accelerators", "run", "models", "envs", "distributed")
MAX_LINES = 60
ALGORITHM_PACKAGES = ("actorcritic.algorithms", "actorcritic.distributed")
SEAM_MODULES = ("actorcritic.run.loop", "actorcritic.samplers.experience",
                "actorcritic.samplers.rollout")
SESSION_OWNERS = ("actorcritic.run.", "actorcritic.training")


def module_name(path: Path, package: Path = PACKAGE) -> str:
    rel = path.relative_to(package.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(node: ast.ImportFrom, current: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = current.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(path: Path, modules: set[str], package: Path = PACKAGE
               ) -> list[tuple[str, str, int]]:
    """(imported module, imported name or '', line) for every import in the file."""
    current = module_name(path, package)
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, "", node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = resolve(node, current, path.name == "__init__.py")
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in modules:  # `from actorcritic.envs import atari` imports a module
                    out.append((sub, "", node.lineno))
                else:
                    out.append((target, alias.name, node.lineno))
    return [(m, n, line) for m, n, line in out if m.split(".")[0] == "actorcritic"]


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, result = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return result


def long_functions(path: Path, package: Path = PACKAGE) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_LINES:
                out.append(f"{path.relative_to(package.parent)}:{node.lineno}: function "
                           f"{node.name} is {length} lines (at most {MAX_LINES})")
    return out


def annotations_with_any(path: Path, package: Path = PACKAGE) -> list[str]:
    """Every annotation (arguments, returns, fields) in the file that names `Any`."""
    tree = ast.parse(path.read_text(), str(path))
    notes: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            every = args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]
            notes += [a.annotation for a in every if a is not None and a.annotation]
            notes += [node.returns] if node.returns else []
        elif isinstance(node, ast.AnnAssign):
            notes.append(node.annotation)
    rel = path.relative_to(package.parent)
    return [f"{rel}:{note.lineno}: the sampler-learner seam is typed: no Any"
            for note in notes if any(isinstance(n, ast.Name) and n.id == "Any" or
                                     isinstance(n, ast.Attribute) and n.attr == "Any"
                                     for n in ast.walk(note))]


def session_assignments(path: Path, package: Path = PACKAGE) -> list[str]:
    """`session.x = ...` or `self.session.x = ...` (and +=) anywhere in the file."""
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        for target in targets:
            owner = target.value if isinstance(target, ast.Attribute) else None
            if isinstance(owner, ast.Name) and owner.id == "session" or \
                    isinstance(owner, ast.Attribute) and owner.attr == "session":
                out.append(f"{path.relative_to(package.parent)}:{node.lineno}: assigns "
                           f"session.{target.attr} (call a RunSession method instead)")
    return out


def violations(package: Path = PACKAGE) -> list[str]:
    files = sorted(package.rglob("*.py"))
    modules = {module_name(p, package) for p in files}
    graph: dict[str, set[str]] = {}
    problems = []
    for path in files:
        name = module_name(path, package)
        rel = path.relative_to(package.parent)
        for target, imported, line in imports_of(path, modules, package):
            dep = target if target in modules else None
            if dep and dep != name and not (name.startswith(dep + ".") and dep == "actorcritic"):
                graph.setdefault(name, set()).add(dep)
            if target == "actorcritic.training" and name.split(".")[1:2] and \
                    name.split(".")[1] in LOWER:
                problems.append(f"{rel}:{line}: imports actorcritic.training (the entry point)")
            if name.startswith("actorcritic.run.") and target.startswith(ALGORITHM_PACKAGES):
                problems.append(f"{rel}:{line}: run/ imports an algorithm ({target})")
            if imported.startswith("_") and not imported.startswith("__") and target != name:
                problems.append(f"{rel}:{line}: imports private name {imported} from {target}")
        problems += long_functions(path, package)
        if name in SEAM_MODULES:
            problems += annotations_with_any(path, package)
        if not name.startswith(SESSION_OWNERS):
            problems += session_assignments(path, package)
    for cycle in find_cycles(graph):
        problems.append("import cycle: " + " -> ".join(cycle))
    return problems


def main() -> int:
    problems = violations()
    for line in problems:
        print(line)
    print(f"{len(problems)} structure violation(s)" if problems else "structure: ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
