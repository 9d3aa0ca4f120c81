"""Facts about where and how wheels are built and loaded, beside the tag policies.

build-images.json (scripts/generate_build_images.py, from pypa/manylinux's README): the build image
families and the architectures each exists for, so a wheel whose symbol versions break its tag can
be told which image a rebuild needs. stack-defaults.json (scripts/generate_stack_defaults.py, from
glibc's sysdeps/*/stackinfo.h and NEWS): where glibc's default stack is executable, and the release
from which dlopen refuses an object that needs an executable stack.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastaudit.errors import PolicyError
from fastaudit.policy.model import Policy

_IMAGES_FILE = "build-images.json"
_STACK_FILE = "stack-defaults.json"


@dataclass(frozen=True, order=True)
class BuildImage:
    """One pypa/manylinux image: a family (manylinux2014, musllinux_1_2) on one architecture."""

    libc_version: tuple[int, int]
    family: str
    arch: str
    libc: str
    image: str            # quay.io/pypa/<family>_<arch>
    base: str | None      # the distribution it is built on
    toolchain: str | None
    end_of_life: bool
    note: str | None      # pypa/manylinux's word in the title: ALPHA, armv7l only

    @property
    def release(self) -> str:
        return ".".join(map(str, self.libc_version))

    def describe(self) -> str:
        libc = "glibc" if self.libc == "glibc" else "musl"
        extra = [f"{self.base}" if self.base else "", f"{libc} {self.release}",
                 "end of life" if self.end_of_life else "", (self.note or "").lower() if self.note == "ALPHA" else ""]
        return f"{self.family} ({', '.join(e for e in extra if e)}): {self.image}"


def data_bytes(name: str) -> bytes:
    return resources.files(__package__).joinpath(name).read_bytes()


def _document(name: str, expected_format: str) -> dict[str, Any]:
    document = json.loads(data_bytes(name))
    if document.get("format") != expected_format:
        raise PolicyError(f"{name} has format {document.get('format')!r}, expected {expected_format}")
    return document


@functools.cache
def build_images() -> tuple[BuildImage, ...]:
    """Every published image, oldest libc first."""
    images = []
    for family in _document(_IMAGES_FILE, "fastaudit-build-images/1")["families"]:
        major, minor = (int(p) for p in family["release"].split("."))
        libc = "glibc" if family["libc"] == "glibc" else "musl"
        for arch, image in family["images"].items():
            images.append(BuildImage((major, minor), family["family"], arch, libc, image, family["base"],
                                     family["toolchain"], family["end_of_life"], family["note"]))
    return tuple(sorted(images))


def build_image_for(policy: Policy) -> BuildImage | None:
    """The newest image whose libc is not newer than the policy's, on the policy's architecture:
    a wheel built there needs no symbol version the tag refuses (the oldest family fit for that
    build). None when no image is that old for the architecture (see oldest_build_image)."""
    if policy.libc_version is None:
        return None
    fitting = [i for i in build_images() if i.arch == policy.arch and i.libc == policy.libc
               and i.libc_version <= policy.libc_version]
    return max(fitting, default=None)


def oldest_build_image(libc: str, arch: str) -> BuildImage | None:
    return min((i for i in build_images() if i.arch == arch and i.libc == libc), default=None)


@functools.cache
def _stack_document() -> dict[str, Any]:
    return _document(_STACK_FILE, "fastaudit-stack-defaults/1")


def default_stack_executable(arch: str) -> bool:
    """Whether glibc gives an object without PT_GNU_STACK an executable stack on arch."""
    entry = _stack_document()["arches"].get(arch)
    return bool(entry and entry["default_executable"])


def dlopen_refuses_executable_stack_since() -> str:
    """The glibc release ("2.41") from which dlopen refuses an object needing an executable stack."""
    return str(_stack_document()["dlopen_refuses_since"])


__all__ = ["BuildImage", "build_image_for", "build_images", "default_stack_executable",
           "dlopen_refuses_executable_stack_since", "oldest_build_image"]
