"""Output formats: --format, --compress and --overlay checked together, OUT's suffix, the report fields."""

from __future__ import annotations

import pytest

from provision.core.outputformat import OutputFormat, OutputRecord, OutputSpec, output_spec, output_spec_for_file
from provision.errors import UsageError


def test_default_is_plain_qcow2_used_as_it_is():
    spec = output_spec(None, False)
    assert spec == OutputSpec(OutputFormat.QCOW2, False)
    assert not spec.converted and spec.suffix == ".qcow2" and spec.inspectable


@pytest.mark.parametrize(("name", "compress", "converted", "inspectable"), [
    ("qcow2", True, True, True), ("raw", False, True, True), ("VMDK", False, True, False), ("vdi", False, True, False),
])
def test_formats(name, compress, converted, inspectable):
    spec = output_spec(name, compress)
    assert spec.format.value == name.lower()
    assert (spec.converted, spec.inspectable) == (converted, inspectable)


def test_unknown_format_and_compress_with_another_format_are_usage_errors():
    with pytest.raises(UsageError, match="one of qcow2, raw, vmdk, vdi"):
        output_spec("vhdx", False)
    with pytest.raises(UsageError, match="--compress writes compressed qcow2"):
        output_spec("raw", True)


@pytest.mark.parametrize(("name", "compress", "option"), [("qcow2", True, "--compress"), ("raw", False, "--format raw"),
                                                           ("vmdk", False, "--format vmdk")])
def test_overlay_refuses_what_must_be_converted(name, compress, option):
    with pytest.raises(UsageError, match=f"--overlay .* cannot be combined with {option}"):
        output_spec(name, compress, overlay=True)
    assert output_spec("qcow2", False, overlay=True) == OutputSpec()


def test_out_suffix_gives_the_format_and_must_agree_with_format():
    assert output_spec_for_file("alice.vmdk", None, False).format == OutputFormat.VMDK
    assert output_spec_for_file("alice.img", None, False).format == OutputFormat.RAW
    assert output_spec_for_file("alice", None, True) == OutputSpec(OutputFormat.QCOW2, True)
    assert output_spec_for_file("alice.disk", "vdi", False).format == OutputFormat.VDI
    with pytest.raises(UsageError, match=r"alice.qcow2 ends in .qcow2, but --format is raw"):
        output_spec_for_file("alice.qcow2", "raw", False)
    with pytest.raises(UsageError, match="--compress writes compressed qcow2"):
        output_spec_for_file("alice.vmdk", None, True)


def test_report_fields_are_null_when_no_image_was_made():
    assert OutputRecord.json_fields(None) == {"format": None, "compressed": None, "size": None, "sha256": None}
    record = OutputRecord(OutputFormat.VDI, False, 12, "ab" * 32)
    assert OutputRecord.json_fields(record) == {"format": "vdi", "compressed": False, "size": 12, "sha256": "ab" * 32}
