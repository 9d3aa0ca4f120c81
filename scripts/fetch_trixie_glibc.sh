#!/usr/bin/env bash
# Fetch Debian 13 (trixie)'s libc6 (glibc 2.41) from Debian's archive and unpack it into the cache,
# once: the executable-stack tests run a dlopen program under that glibc's own loader
# (ld-linux-x86-64.so.2 --library-path ...), because glibc 2.41 is the first to refuse to dlopen an
# object that needs an executable stack and Debian 12's 2.36 does not. Nothing is installed on the
# system: apt reads a private source list and state folder. Prints the unpacked library folder.
# Needs apt-get and dpkg-deb (Debian or a derivative) and Debian's archive keyring; x86-64 only.
set -euo pipefail
CACHE=${FASTAUDIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fastaudit}/trixie-libc6
LIBDIR="$CACHE/root/usr/lib/x86_64-linux-gnu"
if [ -x "$LIBDIR/ld-linux-x86-64.so.2" ]; then
    echo "$LIBDIR"
    exit 0
fi
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
[ "$(dpkg --print-architecture 2>/dev/null)" = amd64 ] || { echo "fetch_trixie_glibc: amd64 only" >&2; exit 1; }
[ -r "$KEYRING" ] || { echo "fetch_trixie_glibc: $KEYRING missing (apt-get install debian-archive-keyring)" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/lists/partial" "$WORK/cache/archives/partial" "$WORK/sources"
cat > "$WORK/sources/trixie.sources" <<EOF
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: $KEYRING
EOF
APT=(-q -o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$WORK/sources"
     -o "Dir::State::Lists=$WORK/lists" -o "Dir::Cache=$WORK/cache" -o Dir::State::status=/dev/null
     -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
apt-get "${APT[@]}" update >/dev/null
(cd "$WORK" && apt-get "${APT[@]}" download libc6:amd64 >/dev/null)
DEB=$(ls "$WORK"/libc6_*_amd64.deb)
mkdir -p "$CACHE"
rm -rf "$CACHE/root.partial"
dpkg-deb -x "$DEB" "$CACHE/root.partial"
basename "$DEB" > "$CACHE/root.partial/SOURCE-PACKAGE"
rm -rf "$CACHE/root"
mv "$CACHE/root.partial" "$CACHE/root"
echo "$LIBDIR"
