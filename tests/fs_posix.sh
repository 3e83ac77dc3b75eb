#!/usr/bin/env bash
# fs_posix.sh - the POSIX behaviour suite (tests/fs_posix.py) on a sekeyfs
# mount and, as the control, on a plain directory on the same kind of file
# system as BACKING: every line (one check each) must agree.  Also: a
# 1 TiB truncate costs no disk in BACKING, and the suite leaves BACKING
# without plaintext names.
. "$(dirname "$0")/fs_lib.sh"
command -v python3 >/dev/null || { bad "python3 is needed (Debian package python3)"; fs_summary; exit 1; }
MANY=${MANY:-5000}

check "cube" fs_make_cube
check "init" fs_init
mkdir "$work/plain"
python3 "$root/tests/fs_posix.py" "$work/plain" "$MANY" >"$work/plain.out" 2>&1
lines=$(wc -l <"$work/plain.out")
check "control ran every group (>= 130 checks)" test "$lines" -ge 130
check "control had no aborted group" bash -c "! grep -q aborted '$work/plain.out'"
# The suite on the mount, with the default options and with the kernel's
# write-back cache: one pass per agreeing line, one failure (with both
# sides) per difference.
for opts in "" "--writeback"; do
	# shellcheck disable=SC2086
	check "mount $opts" fs_mount $opts || { fs_summary; exit 1; }
	sub="$mnt/t${opts:+-wb}"
	mkdir "$sub"
	python3 "$root/tests/fs_posix.py" "$sub" "$MANY" >"$work/mnt.out" 2>&1
	while IFS= read -r line; do
		case $line in
		'< '*|'> '*) bad "differs${opts:+ ($opts)}: $line" ;;
		esac
	done < <(diff "$work/plain.out" "$work/mnt.out")
	same=$(diff --unchanged-line-format='%L' --old-line-format='' --new-line-format='' \
		"$work/plain.out" "$work/mnt.out" | wc -l)
	pass=$((pass + same))
	echo "sekeyfs ${opts:-(default options)}: $same of $lines checks agree with the control"
	[ -z "$opts" ] || break
	check "unmount" fs_umount
done

# holes stay holes: a 1 TiB file costs no disk in BACKING
truncate -s 1T "$mnt/huge"
check "1 TiB size" test "$(stat -c %s "$mnt/huge")" -eq $((1 << 40))
used=$(du -sk "$back" | cut -f1)
check "BACKING uses < 64 MiB after a 1 TiB truncate (${used} KiB)" test "$used" -lt 65536
rm -f "$mnt/huge"
check "no plaintext name in BACKING" bash -c "! find '$back' | grep -q -e 'f00000' -e 'nnnnnnnn' -e 'sparse'"
check "unmount" fs_umount
fs_summary
