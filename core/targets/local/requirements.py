"""What a model needs installed, and whether the bot's runtime has it.

A model's requirements are its `requirements.txt`; failing that the pip dependencies of its
`python_env.yaml`; failing that the `pip:` section of its `conda.yaml`. Each is compared with
the distributions installed where the model servers run (importlib.metadata), names
normalised as PyPI does (`Scikit_Learn` is `scikit-learn`).

MLflow writes exact pins of the versions it found where the model was logged, so a pin is
read as what it means in practice:
- `pkg==X.Y.Z` is met by any installed `X.Y.*`: a patch release keeps what a model relies on;
  another minor or major release is incompatible (pickles and APIs change there).
- `mlflow` (and its `-skinny`/`-tracing` parts) is met by any installed release of the same
  major version: the runtime's MLflow is what loads and serves the model, and MLflow loads
  models logged by any release of its major version.
- every other specifier (`>=`, `<`, `~=`, `!=`, `===`, `==X.*`) is applied as written;
  requirements whose environment marker does not hold here are skipped, and lines that are
  pip options (`-r`, `--index-url`) or local paths name nothing to compare.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import pickletools
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

MLFLOW_PARTS = frozenset({"mlflow", "mlflow-skinny", "mlflow-tracing"})
# pickles bigger than this are not scanned for the modules they name (seconds of parsing)
PICKLE_SCAN_MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Requirements:
    """The requirement lines of one model, in its own words, and the Python it was logged with."""

    lines: tuple[str, ...]
    python: str = ""  # "3.11.7", or "" when the model does not say
    source: str = ""  # the file they were read from

    @property
    def digest(self) -> str:
        """Stable over order, spacing and name spelling: one environment per set of needs."""
        text = "\n".join(sorted(" ".join(line.split()).lower() for line in self.lines))
        return hashlib.sha256(f"{text}\npython {self.python}".encode()).hexdigest()

    @property
    def other_python(self) -> str:
        """The Python release it was logged with ("3.10") when that is not the one that serves
        it (pickles and compiled extensions may not load across them), else ""."""
        try:
            logged = Version(self.python)
        except InvalidVersion:
            return ""
        if (logged.major, logged.minor) == sys.version_info[:2]:
            return ""
        return f"{logged.major}.{logged.minor}"


@dataclass(frozen=True)
class Unmet:
    """A requirement the runtime does not meet: `installed` is "" when the package is absent."""

    requirement: str
    name: str
    installed: str

    def describe(self) -> str:
        if not self.installed:
            return f"{self.requirement} — not installed"
        return f"{self.requirement} — installed {self.installed}, which does not satisfy it"


def read(model_dir: Path) -> Requirements:
    """The requirements `model_dir` declares (empty when it declares none)."""
    python = ""
    env_file = model_dir / "python_env.yaml"
    env = _yaml(env_file)
    if env:
        python = str(env.get("python") or "")
    req_file = model_dir / "requirements.txt"
    if req_file.is_file():
        return Requirements(_lines(req_file), python, req_file.name)
    if env and env.get("dependencies"):
        return Requirements(_expand(env["dependencies"], model_dir), python, env_file.name)
    conda = _yaml(model_dir / "conda.yaml")
    deps = (conda or {}).get("dependencies")
    for dep in deps if isinstance(deps, list) else []:
        if isinstance(dep, dict) and dep.get("pip"):
            return Requirements(_expand(dep["pip"], model_dir), python, "conda.yaml")
    return Requirements((), python, "")


def _yaml(path: Path) -> dict[str, object] | None:
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text())
    return data if isinstance(data, dict) else None


def _lines(path: Path) -> tuple[str, ...]:
    return _expand(path.read_text().splitlines(), path.parent)


def _expand(items: object, base: Path) -> tuple[str, ...]:
    out: list[str] = []
    for raw in items if isinstance(items, list) else []:
        line = str(raw).split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r ", "--requirement ")):
            nested = base / line.split(None, 1)[1].strip()
            if nested.is_file() and nested.resolve().is_relative_to(base.resolve()):
                out.extend(_lines(nested))
            continue
        out.append(line)
    return tuple(out)


def installed() -> dict[str, str]:
    """Every distribution installed here, by normalised name, with its version."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonicalize_name(name), dist.version)
    return found


def parse(line: str) -> Requirement | None:
    """The requirement a line names, or None for pip options and local paths."""
    if line.startswith("-") or line.startswith((".", "/", "file:")):
        return None
    try:
        return Requirement(line)
    except InvalidRequirement:
        return None


def unmet(reqs: Requirements, have: dict[str, str] | None = None) -> list[Unmet]:
    """The requirements of `reqs` that the distributions `have` (default: this runtime's) miss."""
    have = installed() if have is None else have
    problems = []
    for line in reqs.lines:
        req = parse(line)
        if req is None or (req.marker is not None and not req.marker.evaluate()):
            continue
        name = canonicalize_name(req.name)
        version = have.get(name, "")
        if not version or not _meets(name, req.specifier, version):
            problems.append(Unmet(requirement=line, name=name, installed=version))
    return problems


def _meets(name: str, spec: SpecifierSet, installed_version: str) -> bool:
    try:
        have = Version(installed_version)
    except InvalidVersion:
        return False
    relaxed = []
    for clause in spec:
        if clause.operator == "==" and not clause.version.endswith(".*"):
            try:
                pinned = Version(clause.version)
            except InvalidVersion:
                return False
            width = 1 if name in MLFLOW_PARTS else 2
            if pinned.release[:width] != have.release[:width]:
                return False
            continue
        relaxed.append(str(clause))
    return SpecifierSet(",".join(relaxed)).contains(have, prereleases=True)


def missing_modules(model_dir: Path) -> list[str]:
    """Top-level modules the model's pickles refer to that neither ship with it (`code/`)
    nor can be imported here: the class of a model logged without `code_paths`."""
    import importlib.util

    shipped = model_dir / "code"
    absent: set[str] = set()
    for pkl in sorted(model_dir.rglob("*.pkl")):
        if pkl.stat().st_size > PICKLE_SCAN_MAX_BYTES:
            continue
        for module in _pickled_modules(pkl.read_bytes()):
            top = module.split(".", 1)[0]
            if top in absent or top in sys.builtin_module_names or top == "__main__":
                continue
            if (shipped / f"{top}.py").exists() or (shipped / top).is_dir():
                continue
            if importlib.util.find_spec(top) is None:
                absent.add(top)
    return sorted(absent)


def _pickled_modules(data: bytes) -> set[str]:
    """The modules a pickle imports from, read without running it; empty if unreadable."""
    modules: set[str] = set()
    memo: dict[int, object] = {}
    recent: list[object] = []  # the values last pushed: STACK_GLOBAL takes the last two
    try:
        for op, arg, _ in pickletools.genops(data):
            name = op.name
            if name == "GLOBAL" and isinstance(arg, str):
                modules.add(arg.split(" ", 1)[0])
            elif name == "STACK_GLOBAL" and len(recent) >= 2 and isinstance(recent[-2], str):
                modules.add(recent[-2])
            elif name == "MEMOIZE" and recent:
                memo[len(memo)] = recent[-1]
            elif name in ("PUT", "BINPUT", "LONG_BINPUT") and recent and isinstance(arg, int):
                memo[arg] = recent[-1]
            elif name in ("FRAME", "PROTO"):
                continue  # framing only: what STACK_GLOBAL takes is still the last two
            elif name in ("GET", "BINGET", "LONG_BINGET") and isinstance(arg, int):
                recent.append(memo.get(arg))
            elif "UNICODE" in name or "STRING" in name:
                recent.append(arg)
            else:
                recent.append(None)
            del recent[:-2]
    except Exception:  # not a pickle we can read: the smoke test will tell instead
        return set()
    return modules
