"""loraxkit.gotools: building go/<name> modules into the hashed cache, once, with a lock.

Each test builds a tiny throw-away Go module (no dependencies, so no network) with the real `go`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from loraxkit import gotools

pytestmark = pytest.mark.skipif(shutil.which("go") is None, reason="needs Go on PATH (go build)")

MAIN_GO = """package main

import "fmt"

var greeting = "unset"

func main() { fmt.Println(greeting) }
"""
FLAVOUR_GO = """//go:build flavour

package main

func init() { greeting = greeting + "+flavour" }
"""


@pytest.fixture
def go_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """go/hello: a main module whose greeting is set by ldflags; cache in tmp_path."""
    root = tmp_path / "go"
    hello = root / "hello"
    hello.mkdir(parents=True)
    (hello / "go.mod").write_text("module example.local/hello\n\ngo 1.22\n")
    (hello / "main.go").write_text(MAIN_GO)
    (hello / "flavour.go").write_text(FLAVOUR_GO)
    (hello / "tool.toml").write_text(
        'packages = ["."]\nldflags = "-X main.greeting=hi-from-ldflags"\nenv = { CGO_ENABLED = "0" }\n'
    )
    monkeypatch.setenv(gotools.GO_DIR_ENV, str(root))
    monkeypatch.setenv(gotools.CACHE_ENV, str(tmp_path / "cache"))
    return root


def run(binary: Path) -> str:
    return subprocess.run([str(binary)], capture_output=True, text=True, check=True).stdout.strip()


def test_build_puts_binary_in_hashed_cache_with_ldflags(go_tree: Path, tmp_path: Path) -> None:
    assert gotools.bin_path("hello", "hello") is None
    bin_dir = gotools.build("hello")
    assert bin_dir.parent.parent == tmp_path / "cache"
    assert bin_dir.parent.name == f"hello-{gotools.source_hash(go_tree / 'hello')}"
    assert gotools.bin_path("hello", "hello") == bin_dir / "hello"
    assert run(bin_dir / "hello") == "hi-from-ldflags"
    assert gotools.bin_path("hello", "missing-binary") is None


def test_env_from_tool_toml_reaches_go(go_tree: Path) -> None:
    spec = go_tree / "hello" / "tool.toml"
    spec.write_text(spec.read_text().replace('CGO_ENABLED = "0"', 'GOFLAGS = "-tags=flavour"'))
    assert run(gotools.build("hello") / "hello") == "hi-from-ldflags+flavour"


def test_second_build_costs_nothing_even_without_go(go_tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = gotools.build("hello")
    stamp = (first / "hello").stat().st_mtime_ns
    monkeypatch.setenv("PATH", "/nonexistent")  # no go: a rebuild attempt would raise
    assert gotools.build("hello") == first
    assert (first / "hello").stat().st_mtime_ns == stamp


def test_changed_sources_build_into_a_new_folder(go_tree: Path) -> None:
    old = gotools.build("hello")
    (go_tree / "hello" / "tool.toml").write_text('packages = ["."]\nldflags = "-X main.greeting=changed"\n')
    assert gotools.bin_path("hello", "hello") is None  # the old build no longer matches the sources
    new = gotools.build("hello")
    assert new != old
    assert run(new / "hello") == "changed"


def test_waits_for_a_concurrent_builder_and_reuses_its_build(go_tree: Path) -> None:
    target = gotools.tool_dir("hello")
    result: list[Path] = []
    with gotools._locked(target.with_name(target.name + ".lock")):
        worker = threading.Thread(target=lambda: result.append(gotools.build("hello")))
        worker.start()
        time.sleep(0.5)
        assert worker.is_alive(), "build() must wait while another process holds the lock"
        # the "other process" finishes its build while we hold the lock
        (target / "bin").mkdir(parents=True)
        (target / gotools.MANIFEST).write_text("{}")
    worker.join(timeout=60)
    assert result == [target / "bin"]
    assert not (target / "bin" / "hello").exists(), "it rebuilt although the other build had finished"


def test_compile_error_is_reported_and_leaves_no_finished_build(go_tree: Path) -> None:
    (go_tree / "hello" / "main.go").write_text(MAIN_GO.replace("fmt.Println", "fmt.Printn"))
    with pytest.raises(gotools.GoToolError, match=r"(?s)building Go tool 'hello' failed.*Printn"):
        gotools.build("hello")
    assert gotools.bin_path("hello", "hello") is None
    assert [p.name for p in (gotools.cache_root()).iterdir() if not p.name.endswith(".lock")] == []


def test_no_go_on_path_names_the_fix(go_tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(gotools.GoToolError, match=r"(?s)`go` is not on PATH.*loraxkit tools build"):
        gotools.build("hello")


def test_unknown_tool_and_bad_spec_name_the_problem(go_tree: Path) -> None:
    with pytest.raises(gotools.GoToolError, match=r"no Go tool 'nope'.*tools: hello"):
        gotools.build("nope")
    assert gotools.bin_path("nope", "nope") is None
    (go_tree / "hello" / "tool.toml").write_text('packages = ["."]\nldflag = "-s"\n')
    with pytest.raises(gotools.GoToolError, match=r"unknown key\(s\) \['ldflag'\]"):
        gotools.build("hello")
    (go_tree / "hello" / "tool.toml").write_text("packages = []\n")
    with pytest.raises(gotools.GoToolError, match="`packages` must be a non-empty list"):
        gotools.build("hello")


def test_cli_builds_lists_and_explains(go_tree: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "loraxkit.cli", "tools", *args], capture_output=True, text=True
        )

    assert cli("list").stdout.strip() == "hello\tnot built"
    built = cli("build")
    assert built.returncode == 0, built.stderr
    name, folder = built.stdout.strip().split("\t")
    assert name == "hello" and run(Path(folder) / "hello") == "hi-from-ldflags"
    assert cli("list").stdout.strip() == f"hello\tbuilt\t{folder}"
    bad = cli("build", "nope")
    assert bad.returncode == 1 and "no Go tool 'nope'" in bad.stderr
    helptext = cli("build", "--help").stdout
    assert "LORAXKIT_TOOLS_CACHE" in cli("--help").stdout and "Go >= 1.26" in helptext
