"""deploy/: the systemd units and the Dockerfile install and run what CI tested (the lock files)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess

import pytest
from packaging.requirements import Requirement

from tests.support.live_server import base_env
from tests.support.paths import REPO
from tests.support.phones import TOKEN
from tests.support.processes import running
from tests.support.servers import free_port, unavailable

UNITS = sorted((REPO / "deploy" / "systemd").glob("*.service"))


def pins(lock: str) -> dict[str, set[str]]:
    """name -> locked versions (one per environment marker), each entry with at least one hash."""
    text = (REPO / lock).read_text()
    entries = re.split(r"\n(?=\S)", text)
    found: dict[str, set[str]] = {}
    for entry in entries:
        match = re.match(r"([A-Za-z0-9_.\-\[\]]+)==(\S+)", entry)
        if match:
            assert "--hash=sha256:" in entry, f"{lock}: {match.group(0)} has no hash"
            name = re.sub(r"\[.*\]", "", match.group(1)).lower().replace("_", "-")
            found.setdefault(name, set()).add(match.group(2))
    return found


def requirements(path: str) -> list[Requirement]:
    lines = (REPO / path).read_text().splitlines()
    return [Requirement(line) for line in lines if line.strip() and not line.startswith(("#", "-r"))]


@pytest.mark.parametrize("source, lock", [("requirements.txt", "requirements.lock"),
                                          ("requirements-dev.txt", "requirements-dev.lock")])  # fmt: skip
def test_each_lock_pins_every_requirement_within_its_range(source, lock):
    locked = pins(lock)
    wanted = requirements(source) + (requirements("requirements.txt") if source != "requirements.txt" else [])
    for requirement in wanted:
        name = requirement.name.lower().replace("_", "-")
        assert name in locked, f"{name} is not in {lock}: run `make lock`"
        assert all(requirement.specifier.contains(v) for v in locked[name]), f"{lock}: {name} {locked[name]}"


def test_the_dev_lock_pins_the_same_runtime_versions_as_the_runtime_lock():
    runtime, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    assert {name: dev.get(name) for name in runtime} == runtime


@pytest.mark.parametrize("package, floor", [("requests", "2.33.0"), ("flask", "3.1.3"), ("werkzeug", "3.1.6"),
                                            ("urllib3", "2.8.0")])  # fmt: skip
def test_packages_with_published_advisories_are_floored_above_them(package, floor):
    (requirement,) = [r for r in requirements("requirements.txt") if r.name.lower() == package]
    assert not requirement.specifier.contains(_below(floor))
    assert requirement.specifier.contains(floor)


def _below(version: str) -> str:
    major, minor, patch = (int(p) for p in version.split("."))
    return f"{major}.{minor}.{patch - 1}" if patch else f"{major}.{minor - 1}.99"


def test_make_and_ci_install_only_from_the_dev_lock_checking_hashes():
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^LOCK \?= requirements-dev\.lock$", makefile, re.M)
    rule = re.search(r"^\$\(VENV\)/\.installed: (.*)\n((?:\t.*\n)+)", makefile, re.M)
    assert rule and rule.group(1).split() == ["$(LOCK)"]
    installs = [line for line in rule.group(2).splitlines() if "pip install" in line]
    # --no-deps: the lock is complete, and an old bundled pip fails resolving an extra in hash mode.
    assert installs and all("--no-deps --require-hashes -r $(LOCK)" in line for line in installs)
    assert "pip check" in rule.group(2)
    ci = (REPO / ".ci" / "run").read_text()
    assert "make lint" in ci and "make test" in ci and "pip install" not in ci


def test_ci_proves_the_install_in_a_venv_with_the_interpreters_own_bundled_pip():
    ci = (REPO / ".ci" / "run").read_text()
    fresh = ci.index("python3 -m venv --without-pip .venv")
    assert fresh < ci.index("-m ensurepip") < ci.index("make install") < ci.index("make lint")
    assert "pip install" not in ci and "--upgrade" not in ci


def test_the_dockerfile_installs_exactly_the_runtime_lock_on_the_locked_python():
    lines = [line.strip() for line in (REPO / "Dockerfile").read_text().splitlines()]
    text = "\n".join(lines)
    installs = [part for part in re.split(r"&&|\n(?!\s)", text.replace("\\\n", " ")) if "pip install" in part]
    assert installs, "the Dockerfile installs nothing"
    for install in installs:
        assert "--no-deps --require-hashes" in install and "-r requirements.lock" in install, install
    assert "pip check" in text
    copy_lock = text.index("COPY requirements.lock")
    assert copy_lock < text.index("pip install") < text.index("COPY . .")
    (base,) = re.findall(r"^FROM python:(\d+\.\d+)", text, re.M)
    assert f"--python-version {base}" in (REPO / "Makefile").read_text()
    assert "requirements.txt" not in text


def test_each_unit_runs_the_documented_command_and_does_not_retry_a_bad_setting():
    commands = {unit.name: _unit(unit)["ExecStart"] for unit in UNITS}
    assert commands == {
        "operator-web.service": [
            '/opt/operator/.venv/bin/gunicorn -c /opt/operator/production.py "app:create_app()"'
        ],
        "operator-worker.service": ["/opt/operator/.venv/bin/flask --app app worker"],
    }
    for unit in UNITS:
        assert _unit(unit)["RestartPreventExitStatus"] == ["2"]


def _unit(path) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def _installed_here(tmp_path, unit) -> str:
    """The unit with this checkout and a temporary state directory (verify checks that they exist)."""
    (tmp_path / "state").mkdir(exist_ok=True)
    text = (
        unit.read_text()
        .replace("/opt/operator", str(REPO))
        .replace("/var/lib/operator", str(tmp_path / "state"))
    )
    (tmp_path / unit.name).write_text(text.replace("/etc/operator", str(tmp_path)))
    return str(tmp_path / unit.name)


@pytest.mark.slow
def test_the_systemd_units_pass_systemd_analyze_verify(tmp_path):
    if shutil.which("systemd-analyze") is None:
        unavailable("systemd-analyze is not installed (apt-get install systemd)")
    units = [_installed_here(tmp_path, unit) for unit in UNITS]
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *units], capture_output=True, text=True, timeout=120
    )
    # verify only warns about unknown keys and bad values: any output is a finding.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.slow
def test_the_web_unit_serves_from_its_state_directory_with_a_copy_of_the_env_example(tmp_path):
    unit = _unit(type(REPO)(_installed_here(tmp_path, UNITS[0])))
    # The EnvironmentFile as docs/operations.md makes it: .env.example's lines, a token and the port.
    env = base_env(tmp_path, TWILIO_AUTH_TOKEN=TOKEN, PORT=str(free_port()))
    env.update(DATABASE_URL="sqlite:///var/operator.db", LOG_DIR="logs", PYTHONPATH="")
    for assignment in unit["Environment"]:
        name, _, value = assignment.partition("=")
        env[name] = value
    url = f"http://127.0.0.1:{env['PORT']}"
    cmd = shlex.split(unit["ExecStart"][0])
    with running(cmd, url + "/livez", tmp_path / "web.log", cwd=unit["WorkingDirectory"][0], env=env):
        pass
    assert (tmp_path / "state" / "var" / "operator.db").exists()
    assert (tmp_path / "state" / "logs" / "operator.log").exists()
