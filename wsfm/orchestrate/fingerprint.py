"""Stage fingerprints: what a stage reads (config fields, code, upstream artifacts), hashed.

A stage's artifact is reused while its fingerprint is unchanged, so the fingerprint must cover
everything that decides the artifact:

- the config fields the stage declares in ``StageSpec.reads`` (``"flow.kappa_exponent"``, or
  a whole section such as ``"data"``);
- its code: the stage function's module and every ``wsfm`` module that it imports,
  transitively (``import`` and ``from ... import`` statements anywhere in a module, those
  inside functions included), plus the extra roots in ``StageSpec.code`` for code that the
  stage reaches only through the runtime (training: ``wsfm.train.ray_train``). Each module
  enters as ``ast.dump`` of its parse tree without docstrings, so comments, docstrings and
  formatting do not rerun a stage; any change to the code does;
- the fingerprints of its upstream stages;
- the user's files that its config names as code or weights (:func:`user_inputs`): the module
  of ``model.target`` and the file of ``train.init_from``, by content, so that an edited
  network or retrained weights under the same name rerun what used them.

``import a.b.c`` counts module ``a.b.c``; ``from m import x`` counts the submodule ``m.x`` if
there is one, else ``m`` (which defines or re-exports ``x``). Parent packages (``a``, ``a.b``)
run on import but are not counted: what a stage uses comes from the modules it names, so a
change to ``wsfm/stages/__init__.py`` reruns no stage, and one stage's edit no other stage.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from wsfm.config import PipelineConfig, to_dict
from wsfm.stages.base import StageSpec

__all__ = ["code_closure", "code_hash", "fingerprint", "read_field", "stage_code_hash",
           "stage_params", "user_inputs"]

PACKAGE = "wsfm"
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def read_field(config: PipelineConfig, dotted: str) -> Any:
    """The value at ``dotted`` (``"flow.t0"``, ``"data"``) as plain JSON-able data."""
    value: Any = config
    for part in dotted.split("."):
        if not (dataclasses.is_dataclass(value) and part in {f.name for f in
                                                             dataclasses.fields(value)}):
            raise ValueError(f"config has no field {dotted!r} (at {part!r})")
        value = getattr(value, part)
    return to_dict(value)


def stage_params(spec: StageSpec, config: PipelineConfig) -> dict[str, Any]:
    """``{dotted field: value}`` for every config field the stage declares it reads."""
    return {name: read_field(config, name) for name in spec.reads}


def user_inputs(spec: StageSpec, config: PipelineConfig) -> dict[str, str]:
    """sha256 of the user's files behind the fields the stage reads: the source of
    ``model.target``'s module (kind ``python``) and the weights file of ``train.init_from``
    (a ``models:/NAME/VERSION`` never changes: its name is enough)."""
    reads, out = set(spec.reads), {}
    if config.model.kind == "python" and reads & {"model", "model.target"}:
        out["model.target"] = _module_digest(config.model.target.partition(":")[0])
    init = config.train.init_from
    if init and not init.startswith("models:/") and reads & {"train", "train.init_from"}:
        path = Path(init)
        out["train.init_from"] = (hashlib.sha256(path.read_bytes()).hexdigest()
                                  if path.is_file() else "missing")
    return out


def _module_digest(module: str) -> str:
    """The module's source, hashed, found without running it where possible ("" where it
    cannot be found: the run's own check names that)."""
    import importlib.util

    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return ""
    origin = Path(found.origin) if found is not None and found.origin else None
    if origin is None or not origin.is_file():
        return ""
    return hashlib.sha256(origin.read_bytes()).hexdigest()


def stage_code_hash(spec: StageSpec) -> str:
    """Hash of the stage's code: its function's module and ``spec.code``, with their imports."""
    return code_hash((spec.fn.__module__, *spec.code))


def fingerprint(spec: StageSpec, config: PipelineConfig, upstream: dict[str, str]) -> str:
    """Hash of stage name, code, the config fields it reads and the upstream fingerprints."""
    payload = {
        "stage": spec.name,
        "code": stage_code_hash(spec),
        "params": stage_params(spec, config),
        "upstream": dict(sorted(upstream.items())),
        **({"user": users} if (users := user_inputs(spec, config)) else {}),
    }
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@functools.cache
def code_hash(roots: tuple[str, ...], package: str = PACKAGE,
              package_dir: Path = PACKAGE_DIR) -> str:
    """sha256 over the docstring-free parse trees of ``code_closure(roots)``; cached per
    process (every plan asks for every stage's hash)."""
    digest = hashlib.sha256()
    for name, tree_hash in sorted(code_closure(roots, package, package_dir).items()):
        digest.update(f"{name} {tree_hash}\n".encode())
    return digest.hexdigest()[:16]


def code_closure(roots: tuple[str, ...], package: str = PACKAGE,
                 package_dir: Path = PACKAGE_DIR) -> dict[str, str]:
    """``{module name: hash of its docstring-free parse tree}`` for ``roots`` and every module
    of ``package`` (rooted at ``package_dir``) that they import, transitively."""
    for root in roots:
        if _module_file(root, package, package_dir) is None:
            raise ValueError(f"code root {root!r}: no such module under {package_dir}")
    hashes: dict[str, str] = {}
    pending = list(roots)
    while pending:
        name = pending.pop()
        path = _module_file(name, package, package_dir)
        if name in hashes or path is None:  # None: outside the package (numpy, ray...)
            continue
        hashes[name], imports = _parse(path.read_text(encoding="utf-8"), name,
                                       path.name == "__init__.py")
        for module, fallback in imports:
            if _module_file(module, package, package_dir) is None and fallback:
                module = fallback  # ``from m import x``: x is a name defined in m
            pending.append(module)
    return hashes


@functools.cache
def _parse(source: str, module: str,
           is_package: bool) -> tuple[str, tuple[tuple[str, str], ...]]:
    """(hash of the parse tree without docstrings, the modules it may import); keyed by the
    source text itself, so an edited file is parsed afresh."""
    tree = ast.parse(source)
    imports = tuple(_imports(tree, module, is_package))
    dump = ast.dump(_strip_docstrings(tree))
    return hashlib.sha256(dump.encode()).hexdigest(), imports


def _module_file(name: str, package: str, package_dir: Path) -> Path | None:
    """The source file of module ``name`` under ``package_dir``, found without importing."""
    parts = name.split(".")
    if parts[0] != package:
        return None
    base = package_dir.joinpath(*parts[1:])
    for path in (base.with_suffix(".py") if parts[1:] else None, base / "__init__.py"):
        if path is not None and path.is_file():
            return path
    return None


def _imports(tree: ast.Module, module: str, is_package: bool) -> list[tuple[str, str]]:
    """(module, fallback) for every import in ``tree``, at any depth: ``import a.b`` gives
    ``("a.b", "")``; ``from m import x`` gives ``("m.x", "m")``: the submodule ``m.x`` if
    there is one, else ``m``, which defines ``x``."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, "") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = module.split(".")
                anchor = anchor[:len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, *([base] if base else [])])
            out += [(base, "") if alias.name == "*" else (f"{base}.{alias.name}", base)
                    for alias in node.names]
    return out


def _strip_docstrings(tree: ast.Module) -> ast.Module:
    """``tree`` without its string-constant statements (docstrings: they do nothing)."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            kept = [s for s in body if not (isinstance(s, ast.Expr)
                                            and isinstance(s.value, ast.Constant)
                                            and isinstance(s.value.value, str))]
            setattr(node, "body", kept)  # noqa: B010  # mypy: only some node types have one
    return tree
