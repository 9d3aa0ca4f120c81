"""The build image a rebuild needs: pypa/manylinux's image families (policy/build-images.json),
judged on gcc-built wheels whose symbol versions break their tag, and on real PyPI wheels."""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from fastaudit.analyze import audit_wheel
from fastaudit.cli import main
from fastaudit.policy import policy_for_tag
from fastaudit.policy.builds import build_image_for, build_images, oldest_build_image
from fastaudit.results import to_json
from tests import elfbuild

SCHEMA = json.loads(resources.files("fastaudit").joinpath("schema/show-v3.json").read_text())


@pytest.mark.parametrize(("tag", "family"), [
    ("manylinux1_x86_64", "manylinux1"),          # CentOS 5, glibc 2.5
    ("manylinux2010_i686", "manylinux2010"),      # CentOS 6, glibc 2.12
    ("manylinux_2_17_aarch64", "manylinux2014"),  # CentOS 7: no older image for aarch64
    ("manylinux_2_27_x86_64", "manylinux_2_24"),  # Debian 9, end of life, the newest not newer than 2.27
    ("manylinux_2_28_ppc64le", "manylinux_2_28"),
    ("manylinux_2_31_armv7l", "manylinux_2_31"),  # armv7l has only the Ubuntu-based images
    ("manylinux_2_34_s390x", "manylinux_2_34"),
    ("manylinux_2_39_riscv64", "manylinux_2_39"),
    ("musllinux_1_1_x86_64", "musllinux_1_1"),
    ("musllinux_1_2_armv7l", "musllinux_1_2"),
])
def test_the_image_for_a_tag(tag: str, family: str) -> None:
    image = build_image_for(policy_for_tag(tag))
    assert image is not None and image.family == family
    assert image.image == f"quay.io/pypa/{family}_{policy_for_tag(tag).arch}"


def test_no_image_is_old_enough_for_some_arches() -> None:
    # armv7l has no manylinux2014 image, riscv64 none before manylinux_2_39, musl armv7l none for 1.1
    for tag, oldest in (("manylinux2014_armv7l", "manylinux_2_31"), ("manylinux_2_35_riscv64", "manylinux_2_39"),
                        ("musllinux_1_1_armv7l", "musllinux_1_2")):
        policy = policy_for_tag(tag)
        assert build_image_for(policy) is None
        assert oldest_build_image(policy.libc, policy.arch).family == oldest


def test_the_data_says_what_pypa_manylinux_says() -> None:
    by_family = {i.family: i for i in build_images() if i.arch == "x86_64"}
    assert (by_family["manylinux1"].base, by_family["manylinux1"].release, by_family["manylinux1"].end_of_life) == \
        ("CentOS 5", "2.5", True)
    assert (by_family["manylinux_2_28"].base, by_family["manylinux_2_28"].end_of_life) == ("AlmaLinux 8", False)
    assert by_family["manylinux_2_34"].base == "AlmaLinux 9"
    assert {i.arch for i in build_images() if i.family == "manylinux2014"} == \
        {"x86_64", "i686", "aarch64", "ppc64le", "s390x"}


def test_show_names_the_image_for_an_over_promising_build(scenarios: dict[str, elfbuild.Scenario]) -> None:
    """gcc-built: an extension that needs GLIBC_2.34 in a wheel tagged manylinux2014."""
    wheel = scenarios["glibc_2_34"].wheel
    report = audit_wheel(wheel)
    assert report.over_promises and report.rebuild_image is not None
    assert report.rebuild_image.tag == "manylinux_2_17_x86_64"
    assert report.rebuild_image.image.image == "quay.io/pypa/manylinux2014_x86_64"
    text = CliRunner().invoke(main, ["show", str(wheel)]).output
    assert "rebuild: to build for manylinux_2_17_x86_64, build in manylinux2014 (CentOS 7, glibc 2.17): " \
           "quay.io/pypa/manylinux2014_x86_64" in text
    stored = to_json(report)
    jsonschema.validate(stored, SCHEMA)
    assert stored["fastaudit"]["rebuild_image"]["image"] == "quay.io/pypa/manylinux2014_x86_64"


def test_no_image_when_symbol_versions_are_not_the_problem(scenarios: dict[str, elfbuild.Scenario]) -> None:
    # consistent; and over-promising only through an external library: a rebuild image fixes neither
    assert audit_wheel(scenarios["glibc_2_17"].wheel).rebuild_image is None
    external = audit_wheel(scenarios["external_libfoo"].wheel)
    assert external.symbol_policy.tag == "manylinux_2_17_x86_64" and external.rebuild_image is None



def test_no_image_for_glibc_private(tmp_path: Path) -> None:
    """gcc-built: GLIBC_PRIVATE is glibc's internal interface; no build image removes it."""
    stub = elfbuild.build_stub_lib(tmp_path / "stub", "libc.so.6", {"GLIBC_2.2.5": ["fa_old"],
                                                                     "GLIBC_2.34": ["fa_new"],
                                                                     "GLIBC_PRIVATE": ["fa_private"]})
    ext = elfbuild.build_extension(tmp_path / "ext", "_core", calls={stub: ["fa_new", "fa_private"]})
    wheel = elfbuild.pack_wheel(tmp_path / "w", "fa_private", "1.0", elfbuild.DEFAULT_TAG,
                                {f"fa_private/{ext.name}": ext})
    report = audit_wheel(wheel)
    assert report.over_promises and "GLIBC_PRIVATE" in report.versioned_symbols["libc.so.6"]
    assert report.rebuild_image is None
    # without the private symbol, the same build gets its image
    ext = elfbuild.build_extension(tmp_path / "ext2", "_core", calls={stub: ["fa_new"]})
    wheel = elfbuild.pack_wheel(tmp_path / "w2", "fa_new", "1.0", elfbuild.DEFAULT_TAG, {f"fa_new/{ext.name}": ext})
    assert audit_wheel(wheel).rebuild_image.image.family == "manylinux2014"


def _corpus_wheel(filename: str) -> Path:
    """One real wheel of the pinned corpus, fetched alone (checked against its sha256) into the cache."""
    from tests.corpus import _fetch_module

    fetch = _fetch_module()
    wheel = next(w for w in fetch.load_set("full") if w.filename == filename)
    path = fetch.cache_dir() / filename
    if not (path.is_file() and fetch.sha256_of(path) == wheel.sha256):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fetch._download(wheel, path.parent)
        except fetch.FetchError as e:
            pytest.skip(f"SKIPPED LOUDLY: {filename} unavailable: {e}")
    return path


def test_a_real_over_promising_wheel() -> None:
    """Pillow 8.3.2 (manylinux2014): its grafted libpng needs ZLIB_1.2.9, which manylinux2014
    refuses (auditwheel agrees: tests/differential). Rebuilt in manylinux2014 against the image's
    zlib it would comply."""
    path = _corpus_wheel("Pillow-8.3.2-cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
    report = audit_wheel(path)
    assert report.over_promises
    assert any(r.detail == "ZLIB_1.2.9" for r in report.over_promise_reasons)
    assert report.rebuild_image.tag == "manylinux_2_17_x86_64"
    assert report.rebuild_image.image.image == "quay.io/pypa/manylinux2014_x86_64"
    stored = to_json(report)
    jsonschema.validate(stored, SCHEMA)
    assert stored["fastaudit"]["rebuild_image"]["base"] == "CentOS 7"


def test_a_real_wheel_with_glibc_private() -> None:
    """imageio-ffmpeg 0.8.1's ffmpeg binary needs GLIBC_PRIVATE: over-promising, no image named."""
    report = audit_wheel(_corpus_wheel("imageio_ffmpeg-0.8.1-py3-none-manylinux_2_28_x86_64.whl"))
    assert report.over_promises and report.rebuild_image is None
    assert any(r.detail == "GLIBC_PRIVATE" for r in report.over_promise_reasons)


@pytest.mark.parametrize(("filename", "declared", "needs", "family"), [
    # tflite-runtime 2.14.0 needs GLIBC_2.27 and 2.29 from libm, and is named manylinux2014
    ("tflite_runtime-2.14.0-cp311-cp311-manylinux2014_x86_64.whl", "manylinux_2_17_x86_64", "GLIBC_2.29",
     "manylinux2014"),
    # LightGBM 3.3.5 needs GLIBC_2.14 and is named manylinux1: only the CentOS 5 image (end of life) fits
    ("lightgbm-3.3.5-py3-none-manylinux1_x86_64.whl", "manylinux_2_5_x86_64", "GLIBC_2.14", "manylinux1"),
])
def test_real_wheels_that_need_a_newer_glibc(filename: str, declared: str, needs: str, family: str) -> None:
    report = audit_wheel(_corpus_wheel(filename))
    assert report.over_promises
    assert any(r.detail == needs and r.criterion == "symbol_version" for r in report.over_promise_reasons)
    assert (report.rebuild_image.tag, report.rebuild_image.image.family) == (declared, family)
    text = CliRunner().invoke(main, ["show", str(_corpus_wheel(filename))]).output
    assert f"rebuild: to build for {declared}, build in {family} (" in text


def test_repair_to_a_tag_the_versions_break_names_the_image(scenarios: dict[str, elfbuild.Scenario],
                                                            tmp_path: Path) -> None:
    from fastaudit.errors import RepairError
    from fastaudit.repair import RepairOptions, plan_repair

    with pytest.raises(RepairError) as refused:
        plan_repair(scenarios["glibc_2_34"].wheel, RepairOptions(plat="manylinux2014_x86_64"))
    message = str(refused.value)
    assert "needs GLIBC_2.34 from libc.so.6" in message
    assert message.endswith("; to build for manylinux_2_17_x86_64, build in manylinux2014 (CentOS 7, glibc 2.17): "
                            "quay.io/pypa/manylinux2014_x86_64")
