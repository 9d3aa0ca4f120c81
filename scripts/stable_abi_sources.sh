#!/bin/sh
# The builds src/fastaudit/policy/stable-abi.json was generated from, as one command. The pyenv
# builds are CPython release tarballs compiled on this project's Debian 12 machine with
# --enable-shared; the Debian ones are the packages named, unpacked with dpkg-deb -x (the sid
# packages fetched with `apt-get download` against a sid sources list).
set -eu
P=${PYENV_ROOT:-/root/.pyenv}/versions
D=${DEBIAN_LIBPYTHON:-/tmp/abi3-apt/debs/x}
L=usr/lib/x86_64-linux-gnu
exec "${PYTHON:-python3}" "$(dirname "$0")/generate_stable_abi.py" \
 --libpython "CPython 3.6.15 built from source by pyenv (--enable-shared), x86_64=$P/3.6.15/lib/libpython3.6m.so.1.0" \
 --libpython "CPython 3.7.16 built from source by pyenv (--enable-shared), x86_64=$P/3.7.16/lib/libpython3.7m.so.1.0" \
 --libpython "CPython 3.8.18 built from source by pyenv (--enable-shared), x86_64=$P/3.8.18/lib/libpython3.8.so.1.0" \
 --libpython "CPython 3.9.18 built from source by pyenv (--enable-shared), x86_64=$P/3.9.18/lib/libpython3.9.so.1.0" \
 --libpython "CPython 3.10.13 built from source by pyenv (--enable-shared), x86_64=$P/3.10.13/lib/libpython3.10.so.1.0" \
 --libpython "CPython 3.11.7 built from source by pyenv (--enable-shared), x86_64=$P/3.11.7/lib/libpython3.11.so.1.0" \
 --libpython "Debian 12 package libpython3.11 3.11.2-6+deb12u6, amd64=/$L/libpython3.11.so.1.0" \
 --libpython "CPython 3.12.1 built from source by pyenv (--enable-shared), x86_64=$P/3.12.1/lib/libpython3.12.so.1.0" \
 --libpython "CPython 3.13.0 built from source by pyenv (--enable-shared), x86_64=$P/3.13.0/lib/libpython3.13.so.1.0" \
 --libpython "Debian sid package libpython3.13 3.13.18-1, amd64=$D/libpython3.13/$L/libpython3.13.so.1.0" \
 --libpython "Debian sid package libpython3.14 3.14.10-1, amd64=$D/libpython3.14/$L/libpython3.14.so.1.0" \
 --libpython "Debian sid package libpython3.15 3.15.2-1, amd64=$D/libpython3.15/$L/libpython3.15.so.1.0" \
 "$@"
