"""Build the project's Go tools (`go/<name>/`) once into a cache outside the work tree.

Every Go program the project uses is a Go main module in `go/<name>/` (go.mod + go.sum, maybe .go
files) with a `tool.toml`:

    packages = ["k8s.io/kubernetes/cmd/kube-apiserver", ...]   # what `go build` builds (required)
    ldflags = "-s -w -X ..."                                     # optional
    env = { CGO_ENABLED = "0", GOTOOLCHAIN = "go1.27.3" }        # optional, added to go's environment

The binaries land in `${LORAXKIT_TOOLS_CACHE:-~/.cache/loraxkit/tools}/<name>-<hash>/bin/`, where
<hash> covers every file of the folder, so a changed pin builds anew and an unchanged one costs
nothing. A file lock makes concurrent builders (two pytest sessions, CI and a shell) build once.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CACHE_ENV = "LORAXKIT_TOOLS_CACHE"
GO_DIR_ENV = "LORAXKIT_GO_DIR"  # where the go/<name>/ folders are (default: the repository's go/)
REPO = Path(__file__).resolve().parents[2]
MANIFEST = "build.json"  # written last: a folder with it is a finished build
_SPEC_KEYS = {"packages", "ldflags", "env"}


class GoToolError(RuntimeError):
    """A tool cannot be built: the message names the tool, the cause and the fix."""


@dataclass(frozen=True)
class ToolSpec:
    name: str
    folder: Path
    packages: tuple[str, ...]
    ldflags: str = ""
    env: dict[str, str] = field(default_factory=dict)


def go_dir() -> Path:
    return Path(os.environ.get(GO_DIR_ENV) or REPO / "go")


def cache_root() -> Path:
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "loraxkit" / "tools"


def go_binary() -> str | None:
    return shutil.which("go")


def tool_names() -> list[str]:
    """Every go/<name>/ that has a tool.toml, sorted."""
    root = go_dir()
    if not root.is_dir():
        return []
    return sorted(p.parent.name for p in root.glob("*/tool.toml"))


def load_spec(name: str) -> ToolSpec:
    folder = go_dir() / name
    spec_file = folder / "tool.toml"
    if not spec_file.is_file():
        known = ", ".join(tool_names()) or "none"
        raise GoToolError(f"no Go tool {name!r}: {spec_file} does not exist (tools: {known})")
    try:
        raw = tomllib.loads(spec_file.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise GoToolError(f"{spec_file}: not valid TOML: {exc}") from exc
    unknown = sorted(set(raw) - _SPEC_KEYS)
    if unknown:
        raise GoToolError(f"{spec_file}: unknown key(s) {unknown}; allowed: {sorted(_SPEC_KEYS)}")
    packages = raw.get("packages")
    if not packages or not isinstance(packages, list) or not all(isinstance(p, str) for p in packages):
        raise GoToolError(
            f'{spec_file}: `packages` must be a non-empty list of Go package paths, e.g. ["./cmd/x"]'
        )
    ldflags = raw.get("ldflags", "")
    if not isinstance(ldflags, str):
        raise GoToolError(f"{spec_file}: `ldflags` must be a string")
    env = raw.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise GoToolError(
            f'{spec_file}: `env` must be a table of strings, e.g. env = {{ CGO_ENABLED = "0" }}'
        )
    return ToolSpec(name, folder, tuple(packages), ldflags, dict(env))


def source_hash(folder: Path) -> str:
    """Hash of every file's relative path and bytes (caches and dot-files excluded)."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if not path.is_file() or any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            continue
        digest.update(rel.as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def tool_dir(name: str) -> Path:
    """The cache folder this tool's current sources build into (it may not exist yet)."""
    spec = load_spec(name)
    return cache_root() / f"{name}-{source_hash(spec.folder)}"


def is_built(name: str) -> bool:
    return (tool_dir(name) / MANIFEST).is_file()


def bin_path(name: str, binary: str) -> Path | None:
    """The built `binary` of tool `name`, or None when it is not built (or the tool is unknown)."""
    try:
        folder = tool_dir(name)
    except GoToolError:
        return None
    path = folder / "bin" / binary
    if (folder / MANIFEST).is_file() and path.is_file() and os.access(path, os.X_OK):
        return path
    return None


@contextlib.contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # blocks while another process builds the same sources
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build(name: str, *, log: Path | None = None) -> Path:
    """Build tool `name` unless its current sources are already built; return its bin/ folder."""
    spec = load_spec(name)
    target = cache_root() / f"{name}-{source_hash(spec.folder)}"
    if (target / MANIFEST).is_file():
        return target / "bin"
    go = go_binary()
    if go is None:
        raise GoToolError(
            f"cannot build Go tool {name!r}: `go` is not on PATH. Install Go >= 1.26 "
            "(see the README's set-up section), then run `loraxkit tools build`."
        )
    with _locked(target.with_name(target.name + ".lock")):
        if (target / MANIFEST).is_file():  # another process built it while we waited
            return target / "bin"
        _build_into(spec, go, target, log)
    return target / "bin"


def _build_into(spec: ToolSpec, go: str, target: Path, log: Path | None) -> None:
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the finished build is for every user of the cache
    try:
        command = [go, "build", "-trimpath", "-mod=readonly", "-buildvcs=false"]
        if spec.ldflags:
            command += ["-ldflags", spec.ldflags]
        command += ["-o", str(staging / "bin") + "/", *spec.packages]
        (staging / "bin").mkdir()
        env = {**os.environ, **spec.env}
        log_file = log or staging / "build.log"
        started, cpu_before = time.monotonic(), _children_cpu()
        with open(log_file, "w") as out:
            result = subprocess.run(command, cwd=spec.folder, env=env, stdout=out, stderr=subprocess.STDOUT)
        seconds, cpu = time.monotonic() - started, _children_cpu() - cpu_before
        if result.returncode != 0:
            tail = "\n".join(Path(log_file).read_text().splitlines()[-25:])
            raise GoToolError(
                f"building Go tool {spec.name!r} failed (exit {result.returncode}) in {spec.folder}:\n"
                f"  {' '.join(command)}\n{tail}"
            )
        version = subprocess.run([go, "version"], env=env, capture_output=True, text=True).stdout.strip()
        manifest = {
            "tool": spec.name,
            "packages": list(spec.packages),
            "go": version,
            "seconds": round(seconds, 1),
            "cpu_seconds": round(cpu, 1),  # go and its compilers: what the build costs on an idle machine
            "load_average": [round(x, 1) for x in os.getloadavg()],
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if target.exists():  # a half-finished folder from a killed run (no manifest): replace it
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def build_all(names: Sequence[str] | None = None, *, echo: bool = False) -> dict[str, Path]:
    """Build the named tools (all of go/ by default) and return each one's bin/ folder."""
    chosen = list(names) if names else tool_names()
    done: dict[str, Path] = {}
    for name in chosen:
        if echo and not is_built(name):
            print(f"building Go tool {name} (a cold build can take minutes) ...", file=sys.stderr, flush=True)
        done[name] = build(name)
    return done


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tools",
        help="build the project's Go tools (Kubernetes control plane, etcd, KWOK, helm, eksctl check)",
        description=(
            "Build the Go programs under go/<name>/ from the Go module proxy at their pinned versions into "
            f"${CACHE_ENV} (default ~/.cache/loraxkit/tools). A tool whose sources are unchanged is not "
            "rebuilt."
        ),
    )
    commands = parser.add_subparsers(dest="tools_command", metavar="SUBCOMMAND", required=True)
    build_cmd = commands.add_parser(
        "build",
        help="build the named tools (default: all) unless already built",
        description=(
            "Build each NAME (a folder under go/; default: every one) with `go build` and print where its "
            "binaries are. Needs Go >= 1.26 on PATH and the Go module proxy. A cold build of all tools "
            "takes minutes (see docs/cluster.md); a second run prints the same paths at once."
        ),
    )
    build_cmd.add_argument("names", nargs="*", metavar="NAME", help="tool to build, e.g. kube (default: all)")
    build_cmd.set_defaults(func=_run_build)
    list_cmd = commands.add_parser(
        "list", help="list the tools and whether they are built", description="List the tools under go/."
    )
    list_cmd.set_defaults(func=_run_list)


def _run_build(args: argparse.Namespace) -> int:
    try:
        built = build_all(args.names, echo=True)
    except GoToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, folder in built.items():
        print(f"{name}\t{folder}")
    return 0


def _run_list(args: argparse.Namespace) -> int:
    for name in tool_names():
        state = f"built\t{tool_dir(name) / 'bin'}" if is_built(name) else "not built"
        print(f"{name}\t{state}")
    return 0
