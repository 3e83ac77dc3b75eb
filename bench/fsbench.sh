#!/usr/bin/env bash
# bench/fsbench.sh - the file-system benchmark: the same phases on every file
# system under test (bench/lib.sh), on a private tmpfs and on a disk folder,
# ROUNDS times, appending one CSV row per figure to $BENCH_CSV:
#   backing,fs,phase,unit,better,round,value,note
# Phases: 1 GiB sequential write (dd bs=128K conv=fsync) with the daemon's
# CPU seconds per GiB, cold sequential read (after a remount and
# drop_caches), random 4 KiB writes and reads (fio, 1 and 4 jobs), create,
# stat and delete of many small files, untar of a /usr/include tarball, then
# ls -lR, md5sum of every file and rm -rf, and the daemon's peak RSS.
# Before every timed phase a throwaway file is written to and deleted from a
# second tmpfs (see prime in bench/lib.sh).  Run by tools/run-bench, as root.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

: "${BENCH_CSV:?set BENCH_CSV to the results file}"
if [ -n "${BENCH_QUICK:-}" ]; then
	SEQ_MIB=${SEQ_MIB:-64}; FIO_FILE_MIB=${FIO_FILE_MIB:-16}; FIO_IO_MIB=${FIO_IO_MIB:-2}
	SMALL_FILES=${SMALL_FILES:-1000}; ROUNDS=${ROUNDS:-1}
	UNTAR_SRC=${UNTAR_SRC:-/usr/include/linux}; BACKINGS=${BACKINGS:-tmpfs}
	PRIME_MIB=${PRIME_MIB:-64}; REMOUNT=${REMOUNT:-0}
else
	SEQ_MIB=${SEQ_MIB:-1024}; FIO_FILE_MIB=${FIO_FILE_MIB:-128}; FIO_IO_MIB=${FIO_IO_MIB:-16}
	SMALL_FILES=${SMALL_FILES:-10000}; ROUNDS=${ROUNDS:-3}
	UNTAR_SRC=${UNTAR_SRC:-/usr/include}; BACKINGS=${BACKINGS:-tmpfs disk}
	PRIME_MIB=${PRIME_MIB:-1024}; REMOUNT=${REMOUNT:-1}
fi
# Quick runs leave CryFS out unless BENCH_FS names it: its scrypt key
# derivation alone takes ~20 s per mount on a shared 2-core machine.
quick_skip=""
if [ -n "${BENCH_QUICK:-}" ] && [ -z "${BENCH_FS:-}" ]; then
	BENCH_FS=${BENCH_FS_ALL/ cryfs/}
	quick_skip="cryfs"
fi
BENCH_FS=${BENCH_FS:-$BENCH_FS_ALL}
FIO_JOBS=${FIO_JOBS:-1 4}
CLK_TCK=$(getconf CLK_TCK)

bench_traps
bench_work=$(mktemp -d /dev/shm/sekeyfs-bench.XXXXXX) || exit 1
bench_disk=$(mktemp -d "${BENCH_DISK_DIR:-/var/tmp}/sekeyfs-bench.XXXXXX") || exit 1
LOG=${BENCH_LOG:-$bench_work/daemons.log}
bench_prime="$bench_work/prime"
mount_tmpfs "$bench_prime" $((PRIME_MIB + 64)) || { echo "fsbench: cannot mount a tmpfs (root?)" >&2; exit 1; }
mount_tmpfs "$bench_work/tmpfs" $((SEQ_MIB * 2 + FIO_FILE_MIB * 8 + 2048)) || exit 1
mkdir -p "$bench_work/home"
printf '%s\n' "$BENCH_PASS" >"$bench_work/pass"
tar -cf "$bench_work/src.tar" -C "$(dirname "$UNTAR_SRC")" "$(basename "$UNTAR_SRC")" 2>/dev/null
untar_files=$(tar -tf "$bench_work/src.tar" | wc -l)

# row BACKING FS PHASE UNIT BETTER ROUND VALUE [NOTE]
row() {
	local note=${8:-}
	printf '%s,%s,%s,%s,%s,%s,%s,%s\n' "$1" "$2" "$3" "$4" "$5" "$6" "$7" "${note//,/;}" >>"$BENCH_CSV"
}
say() { printf '  %-8s %-10s r%s %-22s %s\n' "$cur_backing" "$cur_fs" "$cur_round" "$1" "$2" >&2; }
# fig PHASE UNIT BETTER VALUE: one figure of the current backing/fs/round.
fig() {
	row "$cur_backing" "$cur_fs" "$1" "$2" "$3" "$cur_round" "$4"
	say "$1" "$4 $2"
}

# timed PHASE PRIME_MIB CMD...: run CMD after priming; records seconds.
timed() {
	local phase=$1 pm=$2 t0 t1
	shift 2
	prime "$pm"
	t0=$(now)
	"$@" || { say "$phase" "FAILED"; return 1; }
	t1=$(now)
	phase_secs=$(elapsed "$t0" "$t1")
	return 0
}

mib_per_s() { awk -v m="$1" -v s="$2" 'BEGIN { printf "%.1f\n", m / s }'; }

seq_write() { dd if=/dev/zero of="$mnt/seq" bs=128K count=$((SEQ_MIB * 8)) conv=fsync status=none; }
seq_read() { dd if="$mnt/seq" of=/dev/null bs=128K status=none; }

phase_seq() {
	local c0 e0 c1 e1
	c0=$(cpu_ticks "$fs_pid"); e0=$(cpu_ticks "$emu_pid")
	timed seq_write "$PRIME_MIB" seq_write || return 1
	c1=$(cpu_ticks "$fs_pid"); e1=$(cpu_ticks "$emu_pid")
	fig seq_write MiB/s higher "$(mib_per_s "$SEQ_MIB" "$phase_secs")"
	if [ -n "$fs_pid" ]; then
		fig cpu_per_gib s lower "$(awk -v d=$((c1 - c0)) -v t="$CLK_TCK" -v m="$SEQ_MIB" \
			'BEGIN { printf "%.2f\n", d / t / (m / 1024) }')"
	fi
	if [ -n "$emu_pid" ]; then
		fig cpu_emu_per_gib s lower "$(awk -v d=$((e1 - e0)) -v t="$CLK_TCK" -v m="$SEQ_MIB" \
			'BEGIN { printf "%.2f\n", d / t / (m / 1024) }')"
	fi
	# cold read: a fresh daemon (no user-space cache) and no page cache;
	# quick runs only drop the page cache (CryFS takes ~20 s to remount)
	if [ "$REMOUNT" = 1 ]; then
		fs_umount "$cur_fs" "$mnt"
		drop_caches
		fs_mount "$cur_fs" "$back" "$mnt" || { say remount FAILED; return 2; }
	else
		drop_caches
	fi
	timed seq_read "$PRIME_MIB" seq_read || return 1
	fig seq_read_cold MiB/s higher "$(mib_per_s "$SEQ_MIB" "$phase_secs")"
	rm -f "$mnt/seq"
}

# fio_run RW JOBS: IOPS of 4 KiB random RW, JOBS files of FIO_FILE_MIB each,
# FIO_IO_MIB of I/O per job (no block twice: reads miss the page cache).
fio_run() {
	local rw=$1 jobs=$2 out field
	out=$(cd "$mnt/fio" && fio --name=rand --rw="$rw" --bs=4k --size="${FIO_FILE_MIB}m" \
		--io_size="${FIO_IO_MIB}m" --numjobs="$jobs" --ioengine=psync --fallocate=none \
		--invalidate=1 --end_fsync=1 --group_reporting --minimal 2>>"$LOG") || return 1
	# terse v3: read IOPS is field 8, write IOPS field 49
	if [ "$rw" = randread ]; then field=8; else field=49; fi
	fio_iops=$(awk -F';' -v f=$field 'NR == 1 { print $f }' <<<"$out")
	[ -n "$fio_iops" ]
}

phase_fio() {
	local j
	mkdir -p "$mnt/fio" || return 1
	for j in $FIO_JOBS; do
		prime 256
		fio_run randwrite "$j" && fig "randwrite_4k_j$j" IOPS higher "$fio_iops"
		drop_caches; prime 256
		fio_run randread "$j" && fig "randread_4k_j$j" IOPS higher "$fio_iops"
	done
	rm -rf "$mnt/fio"
}

small_create() {
	local d i
	for ((d = 0; d < 10; d++)); do
		mkdir "$mnt/small/d$d" || return 1
		for ((i = d; i < SMALL_FILES; i += 10)); do
			printf 'small file %08d\n' "$i" >"$mnt/small/d$d/f$i" || return 1
		done
	done
}
small_stat() {
	local i
	for ((i = 0; i < SMALL_FILES; i++)); do
		[ -f "$mnt/small/d$((i % 10))/f$i" ] || return 1
	done
}

phase_small() {
	mkdir "$mnt/small" || return 1
	timed create_files 256 small_create && fig create_files s lower "$phase_secs"
	drop_caches
	timed stat_files 256 small_stat && fig stat_files s lower "$phase_secs"
	drop_caches
	timed delete_files 256 rm -rf "$mnt/small" && fig delete_files s lower "$phase_secs"
}

md5_all() { find "$mnt/src" -type f -print0 | xargs -0 -r md5sum >/dev/null; }

phase_tree() {
	mkdir "$mnt/src" || return 1
	timed untar 256 tar -xf "$bench_work/src.tar" -C "$mnt/src" && fig untar s lower "$phase_secs"
	drop_caches
	timed ls_lR 256 ls -lR "$mnt/src" >/dev/null && fig ls_lR s lower "$phase_secs"
	drop_caches
	timed md5sum 256 md5_all && fig md5sum s lower "$phase_secs"
	drop_caches
	timed rm_rf 256 rm -rf "$mnt/src" && fig rm_rf s lower "$phase_secs"
}

# one_round: every phase on the mounted file system.
one_round() {
	phase_seq || return 1
	phase_fio
	phase_small
	phase_tree
	if [ -n "$fs_pid" ]; then fig rss_peak MiB lower "$(peak_rss_mib "$fs_pid")"; fi
	if [ -n "$emu_pid" ]; then fig rss_emu_peak MiB lower "$(peak_rss_mib "$emu_pid")"; fi
	return 0
}

backing_root() {
	case $1 in
	tmpfs) echo "$bench_work/tmpfs" ;;
	disk) echo "$bench_disk" ;;
	esac
}

bench_one_fs() {
	local why
	why=$(fs_missing "$cur_fs")
	if [ -n "$why" ]; then
		row "$cur_backing" "$cur_fs" skipped - - 0 "" "$why"
		echo "  $cur_backing $cur_fs: skipped ($why)" >&2
		return 0
	fi
	back="$(backing_root "$cur_backing")/$cur_fs"
	mnt="$bench_work/mnt-$cur_backing-$cur_fs"
	[ "$cur_fs" = raw ] && mnt=$back
	fs_create "$cur_fs" "$back" || { row "$cur_backing" "$cur_fs" skipped - - 0 "" "create failed"; return 0; }
	for ((cur_round = 1; cur_round <= ROUNDS; cur_round++)); do
		if ! fs_mount "$cur_fs" "$back" "$mnt"; then
			why="mount failed: $(tail -n 1 "$LOG" 2>/dev/null)"
			row "$cur_backing" "$cur_fs" skipped - - "$cur_round" "" "$why"
			echo "  $cur_backing $cur_fs: $why" >&2
			fs_umount "$cur_fs" "$mnt"
			break
		fi
		one_round
		fs_umount "$cur_fs" "$mnt"
	done
	rm -rf "$back"
}

main() {
	echo "fsbench: $SEQ_MIB MiB sequential, fio $FIO_FILE_MIB MiB files ($FIO_IO_MIB MiB I/O per job)," \
		"$SMALL_FILES small files, untar $UNTAR_SRC ($untar_files entries), $ROUNDS round(s), on: $BACKINGS" >&2
	case " $BENCH_FS " in
	*" sekeyfs "*) make_cube "$bench_work/cube" || { echo "fsbench: cannot make the cube" >&2; exit 1; } ;;
	esac
	for cur_backing in $BACKINGS; do
		for cur_fs in $quick_skip; do
			row "$cur_backing" "$cur_fs" skipped - - 0 "" "left out of quick runs (slow scrypt mount); BENCH_FS=cryfs runs it"
		done
		for cur_fs in $BENCH_FS; do
			cur_round=0
			bench_one_fs
		done
	done
}

main
