"""The grcf modules each pipeline step runs, computed from the imports, and their fingerprint.

A step's code is its `grcf` subcommand's function in cli.py, what that function calls there,
and every module reached from their `import` statements (function-level lazy imports
included), transitively. One rule narrows it: the features and validate steps of a dataset
run only the format module of its `source` (cli.py picks it by name) and only the extractors
(`features/<modality>.py`) of the modalities that source extracts and the dataset keeps.

The fingerprint hashes each module's syntax tree with docstrings removed, so comments,
docstrings and formatting do not change it: Snakemake passes it as a rerun-triggering param.
DVC's stages depend on the same code at the grain of the layers (`packages`): the sub-packages
a step's modules live in (`src/grcf/training`, `src/grcf/data`, ...) and the base modules by
file. `python -m grcf.pipeline.codedeps` prints those lists; `python -m grcf.pipeline.codedeps
--write dvc.yaml` puts them there (after a change to the imports).
"""

from __future__ import annotations

import ast
import hashlib
import re
import sys
from functools import lru_cache
from pathlib import Path

from grcf import MODALITIES
from grcf.data import datasets

PACKAGE = "grcf"
# pipeline step -> the cli.py function its subcommand runs
STEPS = {
    "validate": "cmd_validate",
    "features": "cmd_features_build",
    "train_stage1": "cmd_train_stage1",
    "train_stage2": "cmd_train_stage2",
    "evaluate": "cmd_evaluate",
    "summarize": "cmd_summarize",
    "summarize_cv": "cmd_summarize_cv",
    "report": "cmd_report",
    "export": "cli_predict:cmd_export",  # `module:function` for a subcommand registered from another module
    "pretrained": "cli_predict:cmd_pretrained",
}
PER_DATASET = ("validate", "features")
# dataset source -> its format module (the registry's), and the modalities it extracts itself
FORMATS = {name: f.module for name, f in datasets.FORMATS.items()}
EXTRACTS = {name: f.extracts for name, f in datasets.FORMATS.items()}


def _file(src: Path, module: str) -> Path | None:
    """src/grcf/x/y.py or src/grcf/x/y/__init__.py for `grcf.x.y` (None: not a grcf module)."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = src.joinpath(*parts[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _parse(path: Path) -> ast.Module:
    path = path.resolve()
    return _parse_version(path, path.stat().st_mtime_ns)


@lru_cache(maxsize=None)
def _parse_version(path: Path, mtime_ns: int) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def imported_names(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Absolute names the `import` statements anywhere in `tree` (function-level ones included) name in
    grcf: the modules, and `module.name` for each name taken from one (it may be a submodule)."""
    out = set()
    here = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            parent = ".".join([*base, *(node.module.split(".") if node.module else [])])
            out.add(parent)
            out |= {f"{parent}.{a.name}" for a in node.names}  # `from . import losses` imports a module
    return {m for m in out if m.split(".")[0] == PACKAGE}


def _entry(entry: str) -> tuple[str, str]:
    """(module name under grcf, function) of a STEPS entry."""
    module, _, function = entry.rpartition(":")
    return module or "cli", function


def _entry_imports(src: Path, entry: str) -> set[str]:
    """Imports of the entry's CLI module at module level, in its function and the functions of
    that module it calls."""
    module, function = _entry(entry)
    tree = _parse(src / f"{module}.py")
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    top = ast.Module(body=[n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.ClassDef))], type_ignores=[])
    name = f"grcf.{module}"
    found, todo, seen = imported_names(top, name, False), [function], set()
    while todo:
        fn = todo.pop()
        if fn in seen:
            continue
        seen.add(fn)
        found |= imported_names(functions[fn], name, False)
        todo += [n.id for n in ast.walk(functions[fn]) if isinstance(n, ast.Name) and n.id in functions]
    return found


def modules(step: str, source: str | None = None, modalities=None, src="src/grcf") -> list[str]:
    """Paths (relative to the project root) of the grcf modules `step` runs.

    For the per-dataset steps, `source` and `modalities` (default: all) narrow the formats and
    extractors; without `source`, every format (what a DVC `foreach` stage must depend on).
    """
    src = Path(src)
    excluded = set()
    if step in PER_DATASET and source is not None:
        kept = set(EXTRACTS.get(source, ())) & set(modalities or MODALITIES)
        excluded |= {m for k, m in FORMATS.items()
                     if k != source and m != FORMATS[source] and m.startswith(f"{datasets.__name__}.")}
        excluded |= {f"grcf.data.extractors.{m}" for m in MODALITIES if m not in kept}
    todo = sorted(_entry_imports(src, STEPS[step]))
    if step in PER_DATASET:
        todo += [m for k, m in FORMATS.items() if source is None or k == source]
    entry_module = _entry(STEPS[step])[0]
    # the CLI module's imports were followed from the step's function only
    files = {f"grcf.{entry_module}": src / f"{entry_module}.py"}
    while todo:
        module = todo.pop()
        path = _file(src, module)
        if module in files or module in excluded or path is None:
            continue
        files[module] = path
        parents = [".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)]
        tree = _parse(path)
        if module == PACKAGE:  # the Python API's front door: its functions' lazy imports are no step's code
            tree = ast.Module(body=[n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.ClassDef))],
                              type_ignores=[])
        todo += parents + sorted(imported_names(tree, module, path.name == "__init__.py"))
    return sorted(p.as_posix() for p in files.values())


def packages(paths) -> list[str]:
    """The layer grain of `paths` (module files under src/grcf): each sub-package's folder once
    (src/grcf/training/losses.py -> src/grcf/training), a base module (src/grcf/config.py) as itself."""
    out = set()
    for p in map(Path, paths):
        parts = p.parts
        i = parts.index(PACKAGE)  # src/grcf/<sub-package>/... or src/grcf/<module>.py
        out.add(Path(*parts[: i + 2]).as_posix() if len(parts) > i + 2 else p.as_posix())
    return sorted(out)


def covers(deps, path) -> bool:
    """Whether a DVC dep in `deps` (a file, or a folder holding it) covers the module `path`."""
    path = Path(path).as_posix()
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


class _NoDocstrings(ast.NodeTransformer):
    def _strip(self, node):
        self.generic_visit(node)
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
        return node

    visit_Module = visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _strip


def code_digest(path) -> str:
    """A hash of the module's code: its syntax tree without docstrings (so no comments, no layout)."""
    tree = _NoDocstrings().visit(ast.parse(Path(path).read_text(), filename=str(path)))
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()


def fingerprint(paths) -> str:
    """One hash over the modules' code digests (their names included)."""
    h = hashlib.sha256()
    for p in sorted(map(str, paths)):
        h.update(f"{p}\0{code_digest(p)}\n".encode())
    return h.hexdigest()[:16]


def write_dvc_deps(dvc_yaml="dvc.yaml") -> bool:
    """Replace each stage's `- src/grcf/...` deps in dvc.yaml by the computed packages (comments
    and everything else kept). True when the file changed."""
    path = Path(dvc_yaml)
    old = path.read_text().split("\n")
    new, stage = [], None
    for line in old:
        m = re.match(r"^  (\w+):\s*$", line)
        stage = m.group(1) if m else stage
        dep = re.match(r"^(\s+)- src/grcf/\S+$", line)
        if not dep or stage not in STEPS:
            new.append(line)
        elif not (new and new[-1].startswith(f"{dep.group(1)}- src/grcf/")):  # first of the run
            new += [f"{dep.group(1)}- {p}" for p in packages(modules(stage))]
    if new == old:
        return False
    from grcf.atomic import write_text

    write_text(path, "\n".join(new))
    return True


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--write"]:
        target = argv[1] if len(argv) > 1 else "dvc.yaml"
        print(f"{target}: " + ("deps updated" if write_dvc_deps(target) else "deps already up to date"))
        return
    for step in STEPS:
        print(f"{step}:")
        for path in packages(modules(step)):
            print(f"  - {path}")


if __name__ == "__main__":
    main()
