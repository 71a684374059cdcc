"""The pytest plugin: it loads without the server libraries, and its fixtures hand each test a
live, freshly reset server."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from forbear_testing import FaultServer, PartnerAPI, PolicyAPI, RawFaults, Reply, SarucciAPI

pytest_plugins = ["pytester"]


def test_plugin_import_loads_no_http_library() -> None:
    """Importing the plugin (as pytest does everywhere) imports no server or client library."""
    code = (
        "import sys, forbear_testing.plugin\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules}"
        " & {'starlette', 'uvicorn', 'httpx', 'aiohttp', 'requests'})\n"
        "print(loaded)\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert output.stdout.strip() == "[]"


def test_missing_extra_gives_an_actionable_error() -> None:
    """Without the server libraries, using forbear_testing says what to install."""
    code = (
        "import sys\n"
        "sys.modules['starlette'] = None\n"
        "import forbear_testing\n"
        "try:\n"
        "    forbear_testing.serve\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "pip install forbear-testing" in output.stdout


def test_fixtures_are_live_and_reset(pytester: pytest.Pytester) -> None:
    """Each test gets the session's servers reset: nothing scripted or recorded carries over."""
    pytester.makepyfile(
        """
        import httpx
        from forbear_testing import Reply

        def test_first(fault_server, partner_api):
            fault_server.script("/p", [Reply(503)] * 3)
            assert httpx.get(fault_server.url + "/p").status_code == 503
            partner_api.add_company()

        def test_second(fault_server, partner_api):
            assert fault_server.arrivals() == []
            assert httpx.get(fault_server.url + "/p").status_code == 200
            key = {"X-API-Key": partner_api.partner_key}
            assert httpx.get(partner_api.url + "/v1/companies", headers=key).json() == {
                "companies": []
            }
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-q")
    result.assert_outcomes(passed=2)


def test_fixture_types(
    fault_server: FaultServer,
    raw_faults: RawFaults,
    refused_port: int,
    partner_api: PartnerAPI,
    policy_api: PolicyAPI,
    sarucci_api: SarucciAPI,
) -> None:
    """Every fixture is what its name says, served on 127.0.0.1."""
    for service in (fault_server, partner_api, policy_api, sarucci_api):
        assert service.url.startswith("http://127.0.0.1:")
    assert raw_faults.url.startswith("http://127.0.0.1:")
    assert 0 < refused_port < 65536
    fault_server.always("/x", Reply(204))
    assert httpx.get(fault_server.url + "/x").status_code == 204


def test_forbear_testing_is_an_alias() -> None:
    """`forbear.testing` is the very module `forbear_testing` is, not a copy."""
    import forbear.testing
    import forbear_testing

    assert forbear.testing is forbear_testing
    assert forbear.testing.Reply is Reply


def test_the_alias_without_forbear_testing_says_what_to_install() -> None:
    """Without forbear-testing, `import forbear.testing` fails with one line naming it."""
    code = "import sys\nsys.modules['forbear_testing'] = None\nimport forbear.testing\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "ImportError: forbear.testing is the forbear-testing distribution: "
        "pip install forbear-testing"
    )
