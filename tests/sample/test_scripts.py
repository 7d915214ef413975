"""``./demo`` and ``./runtests``: their help, and the shell helpers they share.

Asking for help sets nothing up: it prints and exits 0 at once.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import ROOT


def sh(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=30, env=env, check=False
    )


def helpers(script: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``script`` in bash with .ci/python.sh's functions, as the scripts run them."""
    return sh("bash", "-c", f"set -euo pipefail; source .ci/python.sh; {script}", env=env)


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_demo_help_documents_its_options_and_environment(flag):
    result = sh("./demo", flag)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: ./demo")
    for documented in ("--big-books", "--check", "DEMO_PORT", "SAMPLE_DB", "DEMO_VENV", "DEMO_VAR"):
        assert documented in result.stdout
    assert result.stderr == ""


def test_demo_refuses_an_unknown_argument_and_points_to_the_help():
    result = sh("./demo", "--bogus")
    assert result.returncode == 2
    assert "./demo --help" in result.stderr


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_runtests_help_is_its_own_and_runs_nothing(flag):
    result = sh("./runtests", flag)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: ./runtests")
    for documented in ("--postgres", "--django", "--python", "--faults", "Chromium", "pytest"):
        assert documented in result.stdout
    assert "== " not in result.stdout  # no set-up, lint or checks before the help


def test_one_virtualenv_serves_both_scripts_whatever_ran_first():
    # The demo's extras are within what the tests installed, and the reverse is not.
    assert helpers('extras_within "postgres,crud" "crud,postgres,test"').returncode == 0
    assert helpers('extras_within "postgres,crud,test" "postgres,crud"').returncode == 1
    union = helpers('extras_union "postgres,crud,test" "crud,postgres"')
    assert union.stdout.strip() == "crud,postgres,test"


def test_without_chromium_or_apt_get_the_reason_is_given():
    result = helpers(
        "CHROMIUM=/nonexistent/chromium; PATH=/nonexistent; ensure_chromium; "
        'echo "$CHROMIUM_MISSING"'
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "no Chromium at /nonexistent/chromium, and no apt-get to install it with"
    )
