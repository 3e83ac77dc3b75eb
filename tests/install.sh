#!/usr/bin/env bash
# install.sh - `make install PREFIX=...` puts the programs, man pages,
# public headers, libraries and sekeyfs.pc in place, and a program built
# only from the installed files (pkg-config) links and runs.
set -u
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.."
case "$BUILD" in *asan*) echo "0 passed, 0 failed (skipped: sanitizer build)"; exit 0 ;; esac
pfx=$(mktemp -d /tmp/sekeyfs-install.XXXXXX)
trap 'rm -rf "$pfx"' EXIT
pass=0; fail=0
t() { if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $*"; fi; }
t make -s BUILD="$BUILD" install PREFIX="$pfx"
for f in bin/secube bin/secube-emu bin/sefile bin/sekeyfs include/sekeyfs/cube/cube.h \
	 include/sekeyfs/sefile/sefile.h include/sekeyfs/wire/wire.h lib/pkgconfig/sekeyfs.pc \
	 share/man/man1/sekeyfs.1; do
	t test -e "$pfx/$f"
done
t test ! -e "$pfx/include/sekeyfs/cube/internal.h"     # internals stay inside
cat >"$pfx/use.c" <<'EOC'
#include <sekeyfs/cube/cube.h>
#include <sekeyfs/sefile/sefile.h>
#include <stdio.h>
int main(void) { printf("%s / %s\n", cube_strerror(CUBE_ENOKEY), sefile_strerror(SEFILE_EINTEGRITY)); return 0; }
EOC
t cc "$pfx/use.c" -o "$pfx/use" $(PKG_CONFIG_PATH="$pfx/lib/pkgconfig" pkg-config --cflags --libs sekeyfs)
t "$pfx/use"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
