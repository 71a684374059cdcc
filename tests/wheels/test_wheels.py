"""The distributions as a user gets them: the sdists and wheels `make dist` built (each wheel
from its sdist), their contents and metadata, and the wheels installed (not editable, not the
source tree) into fresh virtual environments: the core alone, then everything, running the
README's examples and one test module per distribution there.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from packaging.metadata import Metadata
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
DIST = (ROOT / os.environ.get("FORBEAR_DIST", "dist")).resolve()
_VERSION_FILE = (ROOT / "src" / "forbear" / "_version.py").read_text(encoding="utf-8")
VERSION = re.search(r'^__version__ = "([^"]+)"', _VERSION_FILE, re.MULTILINE)[1]


def _name(project: Path) -> str:
    text = (project / "pyproject.toml").read_text(encoding="utf-8")
    return re.search(r'^name = "([^"]+)"', text, re.MULTILINE)[1]


#: Every distribution of the workspace and its folder: the core, then one per adapters/*/.
PROJECTS: dict[str, Path] = {
    _name(project): project
    for project in [ROOT, *sorted((ROOT / "adapters").glob("*/"))]
    if (project / "pyproject.toml").is_file()
}

#: The test module each distribution runs from its installed wheel. A distribution not named
#: here (or whose module was renamed) runs the first ``tests/test_*.py`` of its folder.
TEST_MODULES = {
    "forbear": "tests/cli/test_cli_explain.py",
    "forbear-httpx": "adapters/httpx/tests/test_httpx_sync.py",
    "forbear-requests": "adapters/requests/tests/test_requests_adapter.py",
    "forbear-aiohttp": "adapters/aiohttp/tests/test_aiohttp_middleware.py",
    "forbear-backoff": "adapters/backoff/tests/test_backoff_handlers.py",
    "forbear-testing": "adapters/testing/tests/test_testing_plugin.py",
    "forbear-tenacity": "adapters/tenacity/tests/test_tenacity_retry.py",
    "forbear-redis": "adapters/redis/tests/test_fleet_processes.py",
    "forbear-otel": "adapters/otel/tests/test_otel_metrics.py",
}
README_TESTS = "tests/docs/test_readme_examples.py"

#: What only a test kit, a demo or an adapter brings; the core alone imports none of it.
NOT_IN_THE_CORE = {
    "aiohttp",
    "backoff",
    "forbear_testing",
    "h11",
    "httpcore",
    "httpx",
    "pytest",
    "requests",
    "rich",
    "starlette",
    "urllib3",
    "uvicorn",
}
#: The core wheel's whole installation: forbear, anyio and what anyio needs.
CORE_CLOSURE = {"forbear", "anyio", "idna", "sniffio", "typing-extensions", "exceptiongroup"}


def package(dist: str) -> str:
    return dist.replace("-", "_")


def artifact(dist: str, kind: str) -> Path:
    """The wheel or sdist of ``dist`` in dist/, at the workspace's version."""
    suffix = "-py3-none-any.whl" if kind == "wheel" else ".tar.gz"
    found = [
        path
        for path in DIST.glob(f"*{suffix}")
        if canonicalize_name(path.name.split("-")[0]) == dist
        and path.name.removesuffix(suffix).split("-")[1] == VERSION
    ]
    assert len(found) == 1, f"expected one {kind} of {dist} {VERSION} in {DIST}, found {found}"
    return found[0]


def wheel_files(dist: str) -> list[str]:
    with zipfile.ZipFile(artifact(dist, "wheel")) as wheel:
        return wheel.namelist()


def wheel_text(dist: str, name: str) -> str | None:
    with zipfile.ZipFile(artifact(dist, "wheel")) as wheel:
        try:
            return wheel.read(f"{package(dist)}-{VERSION}.dist-info/{name}").decode()
        except KeyError:
            return None


def module_for(dist: str) -> str:
    named = TEST_MODULES.get(dist)
    if named is not None and (ROOT / named).is_file():
        return named
    found = sorted((PROJECTS[dist] / "tests").glob("test_*.py"))
    assert found, f"{dist} has no tests/test_*.py to run from its wheel"
    return found[0].relative_to(ROOT).as_posix()


# -- the artifacts ---------------------------------------------------------------------------


def test_every_distribution_is_built_at_one_version() -> None:
    """dist/ holds one sdist and one wheel per distribution, all at the workspace's version."""
    assert {"forbear", "forbear-testing"} <= set(PROJECTS)
    built = sorted(path.name for path in DIST.iterdir())
    expected = sorted(artifact(dist, kind).name for dist in PROJECTS for kind in ("wheel", "sdist"))
    assert built == expected


@pytest.mark.parametrize("dist", sorted(PROJECTS))
def test_wheel_holds_its_package_and_nothing_else(dist: str) -> None:
    """The package with py.typed and its dist-info: no tests, no caches, no stray files."""
    files = wheel_files(dist)
    name = package(dist)
    assert {path.split("/")[0] for path in files} == {name, f"{name}-{VERSION}.dist-info"}
    code = [path.split("/", 1)[1] for path in files if path.startswith(f"{name}/")]
    assert "py.typed" in code
    assert "__init__.py" in code
    assert [path for path in code if not path.endswith(".py") and path != "py.typed"] == []
    test_like = re.compile(r"(^|/)(tests?/|conftest\.py$|test_[^/]*\.py$)")
    assert [path for path in code if test_like.search(path)] == []
    if dist == "forbear":
        assert [path for path in code if path.startswith("testing/") or "demo" in path] == []


def test_only_forbear_testing_registers_a_pytest_plugin() -> None:
    """The pytest11 entry point is forbear-testing's alone; the commands are where they belong."""
    found: dict[str, dict[str, set[str]]] = {}
    for dist in PROJECTS:
        parser = configparser.ConfigParser()
        parser.optionxform = str
        parser.read_string(wheel_text(dist, "entry_points.txt") or "")
        found[dist] = {section: set(parser[section]) for section in parser.sections()}
    assert {dist for dist, groups in found.items() if "pytest11" in groups} == {"forbear-testing"}
    assert found["forbear-testing"]["pytest11"] == {"forbear"}
    assert found["forbear"] == {"console_scripts": {"forbear"}}
    assert found["forbear-testing"]["console_scripts"] == {"forbear-demo"}


@pytest.mark.parametrize("dist", sorted(PROJECTS))
def test_metadata_is_valid_and_pins_the_workspace(dist: str) -> None:
    """Valid metadata; the core needs anyio only; each pin on a sibling is ``>=X.Y,<X.Y+1``."""
    text = wheel_text(dist, "METADATA")
    assert text is not None
    metadata = Metadata.from_email(text, validate=True)
    assert canonicalize_name(metadata.name) == dist
    assert metadata.version == Version(VERSION)
    assert metadata.description, "the README is the long description"
    requires = metadata.requires_dist or []
    if dist == "forbear":
        assert {req.name for req in requires if req.marker is None} == {"anyio"}
    else:
        assert "forbear" in {req.name for req in requires if req.marker is None}
    version = Version(VERSION)
    next_minor = Version(f"{version.major}.{version.minor + 1}")
    for req in requires:
        if canonicalize_name(req.name) in PROJECTS:
            assert version in req.specifier, f"{dist}: {req} excludes {version}"
            assert next_minor not in req.specifier, f"{dist}: {req} has no upper bound"


@pytest.mark.parametrize("dist", sorted(PROJECTS))
def test_sdist_holds_its_own_project(dist: str) -> None:
    """Each sdist holds its own folder's project (the core's: src/forbear only), no caches."""
    with tarfile.open(artifact(dist, "sdist")) as sdist:
        names = [member.name for member in sdist.getmembers() if member.isfile()]
    assert {name.split("/")[0] for name in names} == {f"{package(dist)}-{VERSION}"}
    inside = [name.split("/", 1)[1] for name in names]
    assert {"PKG-INFO", "pyproject.toml", "README.md"} <= set(inside)
    assert [name for name in inside if "__pycache__" in name or name.endswith(".pyc")] == []
    assert f"src/{package(dist)}/py.typed" in inside
    if dist == "forbear":
        extra = {"PKG-INFO", "pyproject.toml", "README.md", ".gitignore"}
        assert [n for n in inside if n not in extra and not n.startswith("src/forbear/")] == []


# -- installed -------------------------------------------------------------------------------


def _run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=cwd)


def _fresh_env(where: Path, *requirements: str) -> Path:
    """A new virtual environment at ``where`` with ``requirements`` installed; its python."""
    done = _run([sys.executable, "-m", "venv", "--without-pip", str(where)])
    assert done.returncode == 0, done.stderr
    python = where / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", str(python)]
    done = _run([*pip, "install", "-q", *requirements])
    assert done.returncode == 0, done.stdout + done.stderr
    return python


_PROBE = """
import importlib, importlib.metadata as md, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps({
    "files": {name: sys.modules[name].__file__ for name in sys.argv[1:]},
    "loaded": sorted({name.split(".")[0] for name in sys.modules}),
    "pytest11": sorted(f"{ep.dist.name}:{ep.value}" for ep in md.entry_points(group="pytest11")),
    "installed": sorted(d.metadata["Name"] for d in md.distributions()),
    "origins": {d.metadata["Name"].lower(): d.read_text("direct_url.json")
                for d in md.distributions() if d.metadata["Name"].lower().startswith("forbear")},
}))
"""


def _probe(python: Path, *modules: str) -> dict[str, Any]:
    """Import ``modules`` in ``python``: where from, what else got loaded, what is installed."""
    done = _run([str(python), "-I", "-c", _PROBE, *modules], cwd=python.parent)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    result["installed"] = {canonicalize_name(name) for name in result["installed"]}
    return result


def _assert_from_the_wheels(python: Path, probe: dict[str, Any]) -> None:
    env = python.parent.parent
    for name, file in probe["files"].items():
        assert Path(file).is_relative_to(env), f"{name} imported from {file}, not the wheel"
    for dist, origin in probe["origins"].items():
        direct = json.loads(origin)
        assert direct["url"].startswith(DIST.as_uri()), f"{dist} installed from {direct['url']}"
        assert not direct.get("dir_info", {}).get("editable"), f"{dist} is an editable install"


@pytest.fixture(scope="module")
def core_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Only the core's wheel, and what it depends on."""
    return _fresh_env(tmp_path_factory.mktemp("core") / "env", str(artifact("forbear", "wheel")))


def test_the_core_alone_imports_nothing_but_anyio(core_env: Path) -> None:
    """`import forbear` works with the core's wheel and anyio; no test kit, client or plugin."""
    probe = _probe(core_env, "forbear")
    _assert_from_the_wheels(core_env, probe)
    assert probe["installed"] <= CORE_CLOSURE
    assert {"forbear", "anyio"} <= probe["installed"]
    assert sorted(NOT_IN_THE_CORE & set(probe["loaded"])) == []
    assert [entry for entry in probe["pytest11"] if entry.startswith("forbear")] == []


def test_the_core_alone_explains_and_points_to_forbear_testing(core_env: Path) -> None:
    """The `forbear` command explains; `forbear.testing` says in one line what to install."""
    done = _run([str(core_env.parent / "forbear"), "explain", "429", "-H", "Retry-After: 30"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("RETRY in 30.0 s: the server asked for Retry-After: 30")
    done = _run([str(core_env), "-I", "-c", "import forbear.testing"])
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "ImportError: forbear.testing is the forbear-testing distribution: "
        "pip install forbear-testing"
    )


@pytest.fixture(scope="module")
def full_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every wheel, each with all its extras (which name the others), and pytest."""
    wheels = []
    for dist in sorted(PROJECTS):
        metadata = Metadata.from_email(wheel_text(dist, "METADATA") or "", validate=False)
        extras = ",".join(sorted(metadata.provides_extra or []))
        wheels.append(
            f"{artifact(dist, 'wheel')}[{extras}]" if extras else str(artifact(dist, "wheel"))
        )
    tools = ["pytest>=8", "pytest-timeout>=2.3", "trio>=0.25"]
    return _fresh_env(tmp_path_factory.mktemp("all") / "env", *wheels, *tools)


def test_every_wheel_installs_and_imports_from_itself(full_env: Path) -> None:
    """Each package is imported from its installed wheel, and one pytest plugin is registered."""
    probe = _probe(full_env, *(package(dist) for dist in sorted(PROJECTS)), "forbear.testing")
    _assert_from_the_wheels(full_env, probe)
    assert set(probe["origins"]) == set(PROJECTS)
    plugins = [entry for entry in probe["pytest11"] if "forbear" in entry]
    assert plugins == ["forbear-testing:forbear_testing.plugin"]


def _copy(relative: str, into: Path) -> None:
    (into / relative).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / relative, into / relative)


def test_readme_and_each_distributions_tests_pass_from_the_wheels(
    full_env: Path, tmp_path: Path
) -> None:
    """The README's examples and one test module per distribution, run against the wheels.

    The modules (with their folders' helpers and conftest files) are copied out of the source
    tree, so nothing under src/ can be imported in place of an installed wheel.
    """
    modules = [README_TESTS, *(module_for(dist) for dist in sorted(PROJECTS))]
    _copy("README.md", tmp_path)
    for module in modules:
        _copy(module, tmp_path)
        folder = (ROOT / module).parent
        for helper in folder.glob("*.py"):
            if not helper.name.startswith("test_"):
                _copy(helper.relative_to(ROOT).as_posix(), tmp_path)
        for parent in folder.relative_to(ROOT).parents:
            if (ROOT / parent / "conftest.py").is_file():
                _copy((parent / "conftest.py").as_posix(), tmp_path)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\naddopts = -p no:cacheprovider\ntimeout = 120\n"
        "filterwarnings = error::ResourceWarning\n",
        encoding="utf-8",
    )

    def run(module: str) -> str | None:
        done = _run([str(full_env), "-I", "-m", "pytest", "-q", "-x", module], cwd=tmp_path)
        if done.returncode == 0 and re.search(r"\d+ passed", done.stdout):
            return None
        return f"{module}:\n{done.stdout[-4000:]}{done.stderr[-2000:]}"

    # One run per module, so every folder's conftest is its own `conftest`; they mostly wait
    # on loopback servers, so three at a time.
    with ThreadPoolExecutor(max_workers=3) as pool:
        failed = [report for report in pool.map(run, modules) if report is not None]
    assert not failed, "\n".join(failed)
