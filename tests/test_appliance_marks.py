"""The guard in conftest.py that keeps `@pytest.mark.appliance` honest, run on inner test files (pytester).

Without it, a test could launch the appliance through a shared fixture while unmarked, and the fast subset
(`-m "not appliance"`) would quietly cost a launch again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

CONFTEST = (Path(__file__).parent / "conftest.py").read_text()


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    return pytester


def test_an_unmarked_test_using_an_appliance_fixture_fails_before_the_launch(inner):
    inner.makepyfile(
        test_inner="""
        import pytest

        @pytest.fixture
        def mine(make_disk_copy):  # reaches sample_disk_template through another fixture
            return make_disk_copy("x")

        def test_direct(sample_disk):
            pass

        def test_indirect(mine):
            pass

        def test_reader(open_readonly):
            pass

        def test_plain(tmp_path):
            pass
        """
    )
    result = inner.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=3)
    result.stdout.fnmatch_lines([
        "*test_direct uses sample_disk_template, which launches the appliance: mark it @pytest.mark.appliance*",
        "*test_indirect uses sample_disk_template, which launches the appliance*",
        "*test_reader uses open_readonly, which launches the appliance*",
    ])  # fmt: skip
    assert not list(inner.path.rglob("sample*")), "the sample disk template was made: the guard came too late"


LAUNCHING_TEST = """
import guestfs
import pytest

def launch(tmp_path, monkeypatch):
    # a launch that fails at once (the hypervisor is /bin/false): still a launch of the appliance
    monkeypatch.setenv("LIBGUESTFS_HV", "/bin/false")
    disk = tmp_path / "d.raw"
    disk.write_bytes(bytes(1 << 20))
    g = guestfs.GuestFS(python_return_dict=True, environment=True)
    g.set_backend("direct")
    g.add_drive_opts(str(disk), format="raw", readonly=True)
    with pytest.raises(RuntimeError):
        g.launch()
    g.close()

def test_unmarked(tmp_path, monkeypatch):
    launch(tmp_path, monkeypatch)

@pytest.mark.appliance
def test_marked(tmp_path, monkeypatch):
    launch(tmp_path, monkeypatch)
"""


@pytest.mark.appliance  # the inner tests launch libguestfs (with /bin/false as the hypervisor)
def test_a_launch_in_an_unmarked_test_fails_it(inner):
    pytest.importorskip("guestfs")
    inner.makepyfile(test_inner=LAUNCHING_TEST)
    result = inner.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)  # test_unmarked passes its body, then errors at teardown
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_unmarked*",
                                 "*test_unmarked launched the appliance (1x) but is not marked*"])
    assert "test_marked launched" not in result.stdout.str()
