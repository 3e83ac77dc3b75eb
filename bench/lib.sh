# bench/lib.sh - what the file-system benchmark (bench/fsbench.sh) needs to
# set up, mount, time and tear down each file system under test, always
# non-interactively: the raw folder, bindfs (single- and multithreaded),
# gocryptfs, securefs, CryFS, EncFS and sekeyfs on its emulated cube.
# Every daemon is started in the foreground by this shell (its PID kept) and
# every mount and tmpfs is recorded, so bench_cleanup (run from the EXIT,
# INT and TERM traps) can unmount everything and kill every daemon by PID.
# Sourced, never run.

BENCH_FS_ALL="raw bindfs bindfs-mt gocryptfs securefs cryfs encfs sekeyfs"
BENCH_PASS=bench-password-not-secret

bench_mounts=()     # FUSE mountpoints we made (unmounted at the end)
bench_tmpfs=()      # tmpfs mounts we made (unmounted at the end)
bench_pids=()       # every daemon we started (killed at the end)
fs_pid=""           # the current FUSE daemon
emu_pid=""          # the current sekeyfs cube emulator

now() { printf '%s\n' "${EPOCHREALTIME/,/.}"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f\n", b - a }'; }

bench_cleanup() {
	local m p
	for m in "${bench_mounts[@]}"; do
		mountpoint -q "$m" 2>/dev/null || continue
		fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null
	done
	for p in "${bench_pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${bench_pids[@]}"; do
		for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
		kill -9 "$p" 2>/dev/null
	done
	if [ -n "${bench_cube:-}" ] && [ -f "$bench_cube/secube-emu.pid" ]; then
		kill "$(cat "$bench_cube/secube-emu.pid")" 2>/dev/null
	fi
	for m in "${bench_tmpfs[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
	[ -n "${bench_disk:-}" ] && rm -rf "$bench_disk"
	[ -n "${bench_work:-}" ] && rm -rf "$bench_work"
	bench_mounts=(); bench_pids=(); bench_tmpfs=()
}

bench_traps() {
	trap bench_cleanup EXIT
	trap 'echo "bench: interrupted, cleaning up" >&2; exit 130' INT TERM
}

# mount_tmpfs DIR MIB: a private tmpfs (unmounted by bench_cleanup).
mount_tmpfs() {
	mkdir -p "$1" && mount -t tmpfs -o "size=${2}m,mode=0700" tmpfs "$1" || return 1
	bench_tmpfs+=("$1")
}

# prime MIB: write and delete a throwaway file on the second tmpfs, so the
# memory the next timed phase uses is not cold host memory handed back.
prime() {
	dd if=/dev/zero of="$bench_prime/throwaway" bs=1M count="$1" status=none 2>/dev/null
	rm -f "$bench_prime/throwaway"
}

drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
}

# cpu_ticks PID: user + system clock ticks of a process (all its threads).
cpu_ticks() {
	local stat
	[ -n "$1" ] && stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
	# the comm field may hold spaces: fields start after the last ')'
	stat=${stat##*) }
	awk '{ print $12 + $13 }' <<<"$stat"
}

# peak_rss_mib PID: the high-water mark of the resident set, in MiB.
peak_rss_mib() {
	awk '/^VmHWM:/ { printf "%.1f\n", $2 / 1024 }' "/proc/$1/status" 2>/dev/null
}

fs_binary() {
	case $1 in
	raw) echo true ;;
	bindfs|bindfs-mt) echo bindfs ;;
	sekeyfs) echo sekeyfs ;;
	*) echo "$1" ;;
	esac
}

# fs_missing FS: prints why FS cannot run here (nothing when it can).
fs_missing() {
	local b
	b=$(fs_binary "$1")
	command -v "$b" >/dev/null 2>&1 && return 0
	if [ "$1" = sekeyfs ]; then
		echo "sekeyfs not built (make all)"
	elif apt-cache policy "$b" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
		echo "$b is in Debian but not installed (tools/run-bench installs it as root)"
	else
		echo "$b is not packaged for this Debian release"
	fi
}

# make_cube DIR: an emulated cube with PINs and AES-256-GCM key 1.
make_cube() {
	bench_cube=$1
	printf 'admin-pin\n' >"$bench_work/admin.pin"
	printf 'user-pin\n' >"$bench_work/user.pin"
	secube create "$bench_cube" >/dev/null &&
		secube init "$bench_cube" --admin-pin-file "$bench_work/admin.pin" \
			--user-pin-file "$bench_work/user.pin" >/dev/null &&
		secube keygen "$bench_cube" --pin-file "$bench_work/admin.pin" --id 1 \
			--alg aes256-gcm --usage encrypt,decrypt >/dev/null
}

# fs_create FS BACK: a new empty encrypted volume in BACK (logs in $LOG).
fs_create() {
	local fs=$1 back=$2
	mkdir -p "$back" || return 1
	case $fs in
	gocryptfs)
		gocryptfs -init -q -passfile "$bench_work/pass" -scryptn 10 "$back" >>"$LOG" 2>&1 ;;
	securefs)
		securefs create --pass "$BENCH_PASS" --pbkdf pkcs5-pbkdf2-hmac-sha256 -r 1000 \
			"$back" >>"$LOG" 2>&1 ;;
	sekeyfs)
		sekeyfs --init --key 1 --device "$bench_cube" --pin-file "$bench_work/user.pin" \
			"$back" >>"$LOG" 2>&1 ;;
	*) return 0 ;;   # raw, bindfs: nothing; cryfs, encfs: made by their first mount
	esac
}

# wait_mounted MNT PID SECONDS: until MNT is a mount point or PID dies.
wait_mounted() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		mountpoint -q "$1" && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# fs_mount FS BACK MNT: mount in the foreground as our child; sets fs_pid
# (and emu_pid for sekeyfs).  The raw folder is its own mount point.
fs_mount() {
	local fs=$1 back=$2 mnt=$3
	fs_pid=""; emu_pid=""
	[ "$fs" = raw ] && return 0
	mkdir -p "$mnt"
	case $fs in
	bindfs)    bindfs -f "$back" "$mnt" >>"$LOG" 2>&1 & ;;
	bindfs-mt) bindfs -f --multithreaded "$back" "$mnt" >>"$LOG" 2>&1 & ;;
	gocryptfs) gocryptfs -fg -q -passfile "$bench_work/pass" "$back" "$mnt" >>"$LOG" 2>&1 & ;;
	securefs)  securefs mount --pass "$BENCH_PASS" "$back" "$mnt" >>"$LOG" 2>&1 & ;;
	cryfs)     HOME="$bench_work/home" CRYFS_FRONTEND=noninteractive CRYFS_NO_UPDATE_CHECK=1 \
			cryfs -f "$back" "$mnt" <"$bench_work/pass" >>"$LOG" 2>&1 & ;;
	encfs)     encfs --standard --extpass="cat $bench_work/pass" -f "$back" "$mnt" \
			</dev/null >>"$LOG" 2>&1 & ;;
	sekeyfs)   sekeyfs -f --device "$bench_cube" --pin-file "$bench_work/user.pin" \
			"$back" "$mnt" >>"$LOG" 2>&1 & ;;
	*) return 1 ;;
	esac
	fs_pid=$!
	bench_pids+=("$fs_pid")
	bench_mounts+=("$mnt")
	# CryFS derives its key with scrypt at every mount: allow it a minute.
	wait_mounted "$mnt" "$fs_pid" 90 || return 1
	if [ "$fs" = sekeyfs ] && [ -f "$bench_cube/secube-emu.pid" ]; then
		emu_pid=$(cat "$bench_cube/secube-emu.pid")
	fi
	return 0
}

# fs_umount FS MNT: unmount and wait for the daemon to exit.
fs_umount() {
	[ "$1" = raw ] && return 0
	[ -n "$fs_pid" ] || return 0
	fusermount3 -u "$2" 2>>"$LOG" || fusermount3 -uz "$2" 2>>"$LOG"
	local i
	for ((i = 0; i < 100; i++)); do kill -0 "$fs_pid" 2>/dev/null || break; sleep 0.1; done
	kill "$fs_pid" 2>/dev/null
	wait "$fs_pid" 2>/dev/null
	fs_pid=""
	return 0
}
