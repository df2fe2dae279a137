"""Project-level checks: import direction, docker-compose structure, packaging."""

from __future__ import annotations
import __future__

import ast
import importlib
import importlib.util
import pkgutil
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_import_direction_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def test_stats_imports_without_redis_or_web_stack() -> None:
    code = (
        "import sys, stats; "
        "bad = [m for m in ('redis', 'fastapi', 'starlette', 'experiments', 'service') "
        "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_docker_compose_structure() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    redis = services["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command and "--appendfsync everysec" in command
    assert "redis-cli" in redis["healthcheck"]["test"]
    assert any(v.endswith(":/data") for v in redis["volumes"])
    api = services["api"]
    assert api["build"]["dockerfile"] == "Dockerfile"
    assert (ROOT / api["build"]["dockerfile"]).exists()
    assert api["depends_on"]["redis"]["condition"] == "service_healthy"
    env = api["environment"]
    assert env["ABACUS_REDIS_URL"].startswith("redis://redis:")
    assert "ABACUS_ADMIN_KEY" in env
    assert set(compose["volumes"]) >= {v.split(":")[0] for v in redis["volumes"]}
    # every variable the service reads is documented in its settings module
    settings_doc = (ROOT / "service" / "settings.py").read_text()
    assert all(name in settings_doc for name in env)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "abacus" in dockerfile and "HEALTHCHECK" in dockerfile


def test_docker_compose_cluster_structure() -> None:
    """The cluster deployment: six nodes, a one-shot job joining them, the API in cluster mode."""
    compose = yaml.safe_load((ROOT / "docker-compose.cluster.yml").read_text())
    services = compose["services"]
    nodes = {
        name: s
        for name, s in services.items()
        if name.startswith("redis-") and "-create" not in name
    }
    assert sorted(nodes) == [f"redis-{i}" for i in range(1, 7)]
    for name, node in nodes.items():
        command = " ".join(node["command"])
        for option in (
            "--cluster-enabled yes",
            "--cluster-config-file /data/nodes.conf",
            "--appendonly yes",
            "--appendfsync everysec",
            '--cluster-announce-hostname "$$NODE"',
        ):
            assert option in command, (name, option)
        assert node["environment"]["NODE"] == name
        assert "redis-cli" in node["healthcheck"]["test"]
        assert node["volumes"] == [f"{name}:/data"]
    assert set(compose["volumes"]) == set(nodes)
    create = services["redis-cluster-create"]
    assert create["restart"] == "no"
    assert {n: c["condition"] for n, c in create["depends_on"].items()} == dict.fromkeys(
        nodes, "service_healthy"
    )
    script = "\n".join(create["command"])
    assert "redis-cli --cluster create" in script and "--cluster-replicas 1" in script
    assert all(name in script for name in nodes) and "cluster_state:ok" in script
    api = services["api"]
    assert api["depends_on"] == {
        "redis-cluster-create": {"condition": "service_completed_successfully"}
    }
    env = api["environment"]
    assert env["ABACUS_REDIS_CLUSTER"] == "1"
    assert env["ABACUS_REDIS_URL"].split("//")[1].split(":")[0] in nodes
    assert (ROOT / api["build"]["dockerfile"]).exists()
    settings_doc = (ROOT / "service" / "settings.py").read_text()
    assert all(name in settings_doc for name in env)


def test_console_script_and_packages_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["abacus"] == "service.cli:main"
    found = project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert set(found) == {"experiments*", "service*", "stats*"}


PACKAGES = ("experiments", "service", "stats")


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        root = importlib.import_module(package)
        names.append(package)
        names += [m.name for m in pkgutil.walk_packages(root.__path__, package + ".")]
    return names


def test_every_public_module_declares_an_all_that_resolves() -> None:
    problems = []
    for name in _modules():
        if name.rsplit(".", 1)[-1].startswith("_"):
            continue  # private modules are imported by their own package only
        module = importlib.import_module(name)
        exported = getattr(module, "__all__", None)
        if exported is None:
            problems.append(f"{name}: no __all__")
            continue
        problems += [
            f"{name}: {n!r} in __all__ is not defined" for n in exported if not hasattr(module, n)
        ]
        if len(set(exported)) != len(exported):
            problems.append(f"{name}: __all__ lists a name twice")
        if hasattr(module, "__path__"):  # a package re-exports every public name it holds
            public = {
                n
                for n, value in vars(module).items()
                if not n.startswith("_")
                and not isinstance(value, types.ModuleType | __future__._Feature)
            }
            problems += [
                f"{name}: {n!r} is public but not in __all__"
                for n in sorted(public - set(exported))
            ]
    assert problems == []


def test_names_imported_across_packages_are_in_their_module_s_all() -> None:
    # What one package (or a test, benchmark or example) takes from another is that module's
    # public surface; a private helper used elsewhere must be made public first.
    problems = []
    for folder in (*PACKAGES, "tests", "bench", "examples"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
                    continue
                top = node.module.split(".")[0]
                if top not in PACKAGES or top == folder:
                    continue
                module = importlib.import_module(node.module)
                exported = getattr(module, "__all__", ())
                for alias in node.names:
                    submodule = (
                        importlib.util.find_spec(f"{node.module}.{alias.name}")
                        if hasattr(module, "__path__")
                        else None
                    )
                    if alias.name not in exported and submodule is None:
                        problems.append(f"{path.relative_to(ROOT)}: {node.module}.{alias.name}")
    assert problems == []


def test_readme_says_what_a_newcomer_needs_and_metadata_is_current() -> None:
    """The Python version, how to stop the service, and every route a caller meets are written
    down; the license is an SPDX string (the table form is deprecated by setuptools)."""
    readme = (ROOT / "README.md").read_text()
    assert "Python 3.11 or newer" in readme
    assert "Stop it with Ctrl-C" in readme
    for route in ("/v1/definitions", "/sdk.js", "/login", "/metrics", "/v1/experiments/KEY/events"):
        assert f"`{route}" in readme or f"{route}`" in readme, route
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert isinstance(project["license"], str)
    assert project["requires-python"] == ">=3.11"
