#!/usr/bin/env bash
# bench/report.sh CSV [MD] - turns one results CSV (bench/fsbench.sh and
# tools/run-bench rows: backing,fs,phase,unit,better,round,value,note) into
#   - the terminal table: every figure's median and min over the rounds,
#     with its ratio to gocryptfs and to bindfs on the same backing, then
#     the targets and whether each is met (stdout);
#   - when MD is given: that Markdown page (docs/PERFORMANCE.md) with the
#     machine, the tables and gnuplot charts written as PNGs beside it.
# Ratios are always  this fs / reference;  "better" says which way is good.
set -u
here=$(cd "$(dirname "$0")" && pwd)
csv=$1
md=${2:-}
tmp=$(mktemp -d /tmp/sekeyfs-report.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# summary lines: backing fs phase unit better n median min
awk -F, '
	NR == 1 && $1 == "backing" { next }
	$1 == "machine" || $3 == "skipped" || $7 == "" { next }
	{ k = $1 SUBSEP $2 SUBSEP $3; v[k] = v[k] " " $7; u[k] = $4; b[k] = $5 }
	END {
		for (k in v) {
			n = split(substr(v[k], 2), a, " ")
			for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > x + 0; j--) a[j + 1] = a[j]; a[j + 1] = x }
			med = (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
			split(k, p, SUBSEP)
			print p[1], p[2], p[3], u[k], b[k], n, med, a[1]
		}
	}' "$csv" >"$tmp/summary"

fs_order="raw bindfs bindfs-mt gocryptfs securefs cryfs encfs sekeyfs"
phase_order="seq_write seq_read_cold cpu_per_gib cpu_emu_per_gib randwrite_4k_j1 randread_4k_j1 randwrite_4k_j4 randread_4k_j4 create_files stat_files delete_files untar ls_lR md5sum rm_rf rss_peak rss_emu_peak"
backings=$(awk -F, 'NR > 1 && $1 != "machine" && $1 != "-" { print $1 }' "$csv" | awk '!s[$0]++' | tr '\n' ' ')

# med BACKING FS PHASE -> median (empty when absent)
med() { awk -v b="$1" -v f="$2" -v p="$3" '$1 == b && $2 == f && $3 == p { print $7 }' "$tmp/summary"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2f\n", a / b }'; }
machine() { awk -F, -v k="$1" '$1 == "machine" && $3 == k { print $8; exit }' "$csv"; }
fmt() { awk -v x="$1" 'BEGIN { if (x == "") print "-"; else if (x + 0 >= 100) printf "%.0f\n", x; else if (x + 0 >= 1) printf "%.2f\n", x; else printf "%.3f\n", x }'; }

terminal_table() {
	local b p f unit better m mn
	for b in $backings; do
		printf '\n== backing: %s   (median of rounds; min; ratio = fs / reference)\n' "$b"
		printf '%-16s %-6s %-10s %10s %10s %10s %9s\n' phase unit fs median min /gocryptfs /bindfs
		for p in $phase_order; do
			for f in $fs_order; do
				read -r unit better m mn < <(awk -v b="$b" -v f="$f" -v p="$p" \
					'$1 == b && $2 == f && $3 == p { print $4, $5, $7, $8 }' "$tmp/summary")
				[ -n "${m:-}" ] || continue
				printf '%-16s %-6s %-10s %10s %10s %10s %9s\n' "$p" "$unit" "$f" "$(fmt "$m")" "$(fmt "$mn")" \
					"$(ratio "$m" "$(med "$b" gocryptfs "$p")")" "$(ratio "$m" "$(med "$b" bindfs "$p")")"
				m=""
			done
		done
		awk -F, -v b="$b" '$1 == b && $3 == "skipped" { printf "skipped: %s (%s)\n", $2, $8 }' "$csv" | sort -u
	done
	printf '\n== device and KMS figures\n'
	awk -F, '$1 == "-" { printf "%-34s %10s %s\n", $2 "/" $3, $7, $4 }' "$csv"
}

# targets: "backing|target|value|met" lines for sekeyfs
targets() {
	local b spec p ref op want r m
	for b in $backings; do
		for spec in "seq_write gocryptfs >= 1.0" "seq_write bindfs >= 0.8" "seq_read_cold bindfs >= 0.9" \
			"randwrite_4k_j1 gocryptfs >= 1.0" "randread_4k_j1 gocryptfs >= 1.0" \
			"randwrite_4k_j4 gocryptfs >= 1.0" "randread_4k_j4 gocryptfs >= 1.0" \
			"untar gocryptfs <= 1.0" "ls_lR gocryptfs <= 1.0" "rm_rf gocryptfs <= 1.0"; do
			read -r p ref op want <<<"$spec"
			r=$(ratio "$(med "$b" sekeyfs "$p")" "$(med "$b" "$ref" "$p")")
			printf '%s|%s %s %sx %s|%s|%s\n' "$b" "$p" "$op" "$want" "$ref" "$r" "$(met "$r" "$op" "$want")"
		done
		m=$(med "$b" sekeyfs rss_peak)
		printf '%s|rss_peak <= 100 MiB|%s|%s\n' "$b" "${m:--}" "$(met "${m:--}" "<=" 100)"
	done
}
met() {
	[ "$1" = "-" ] && { echo "not measured"; return; }
	awk -v r="$1" -v op="$2" -v w="$3" 'BEGIN { ok = (op == ">=") ? (r + 0 >= w + 0) : (r + 0 <= w + 0); print ok ? "met" : "NOT met" }'
}

terminal_table
printf '\n== sekeyfs targets (ratios in this run)\n'
targets | awk -F'|' '{ printf "%-6s %-32s %8s  %s\n", $1, $2, $3, $4 }'

[ -n "$md" ] || exit 0

# ---- Markdown page and charts -------------------------------------------
docdir=$(dirname "$md")
mkdir -p "$docdir"
stamp=$(machine date)

# dat BACKING NAME PHASES...: a gnuplot table of medians (rows: fs)
dat() {
	local b=$1 out=$2 p f line have
	shift 2
	printf 'fs %s\n' "$*" >"$out"
	for f in $fs_order; do
		line=$f; have=0
		for p in "$@"; do
			m=$(med "$b" "$f" "$p")
			[ -n "$m" ] && have=1
			line="$line ${m:-0}"
		done
		[ $have -eq 1 ] && printf '%s\n' "$line" >>"$out"
	done
}
plots=()
if command -v gnuplot >/dev/null 2>&1; then
	for b in $backings; do
		dat "$b" "$tmp/$b-seq.dat" seq_write seq_read_cold
		dat "$b" "$tmp/$b-rand.dat" randwrite_4k_j1 randread_4k_j1 randwrite_4k_j4 randread_4k_j4
		dat "$b" "$tmp/$b-meta.dat" create_files stat_files delete_files untar ls_lR md5sum rm_rf
		for kind in seq rand meta; do
			case $kind in
			seq) t="sequential 128 KiB dd on $b (MiB/s, higher is better)"; y="MiB/s"; lg=0 ;;
			rand) t="random 4 KiB fio on $b (IOPS, higher is better)"; y="IOPS"; lg=1 ;;
			meta) t="metadata and tree phases on $b (seconds, lower is better)"; y="seconds"; lg=1 ;;
			esac
			png="perf-$b-$kind.png"
			gnuplot -e "in='$tmp/$b-$kind.dat'; out='$docdir/$png'; ttl='$t'; yl='$y'; logy=$lg" \
				"$here/plot.gp" 2>>"$tmp/gnuplot.log" && plots+=("$b|$png|$t")
		done
	done
fi

md_pivot() {
	local b=$1 p f hdr sep line m unit
	hdr="| phase | unit |"; sep="|---|---|"
	for f in $fs_order; do
		[ -n "$(awk -v b="$b" -v f="$f" '$1 == b && $2 == f' "$tmp/summary")" ] || continue
		hdr="$hdr $f |"; sep="$sep---:|"
	done
	printf '%s\n%s\n' "$hdr" "$sep"
	for p in $phase_order; do
		unit=$(awk -v b="$b" -v p="$p" '$1 == b && $3 == p { print $4; exit }' "$tmp/summary")
		[ -n "$unit" ] || continue
		line="| $p | $unit |"
		for f in $fs_order; do
			[ -n "$(awk -v b="$b" -v f="$f" '$1 == b && $2 == f' "$tmp/summary")" ] || continue
			m=$(med "$b" "$f" "$p")
			line="$line $(fmt "$m") |"
		done
		printf '%s\n' "$line"
	done
}
md_ratios() {
	local b=$1 p hdr line f m
	printf '| phase | sekeyfs / gocryptfs | sekeyfs / bindfs | sekeyfs / bindfs-mt | sekeyfs / raw |\n|---|---:|---:|---:|---:|\n'
	for p in $phase_order; do
		m=$(med "$b" sekeyfs "$p")
		[ -n "$m" ] || continue
		line="| $p |"
		for f in gocryptfs bindfs bindfs-mt raw; do line="$line $(ratio "$m" "$(med "$b" "$f" "$p")") |"; done
		printf '%s\n' "$line"
	done
}

{
	cat <<EOF
# Performance

Generated by \`tools/run-bench\` (\`make bench\`) on $stamp from
\`$(basename "$csv")\` (in \`bench/results/\`); do not edit by hand, rerun.
$(machine mode)

## Machine

| | |
|---|---|
| CPU | $(machine cpu_model) |
| cores (nproc) | $(machine nproc) |
| kernel | $(machine kernel) |
| memory available at start | $(machine mem_available) |
| load average at start / end | $(machine load_start) / $(machine load_end) |
| tools | $(machine versions) |

The machine is shared (other builds and tests ran at the same time on its
$(machine nproc) cores): single figures are noisy, which is why every phase is
repeated and the **median** is quoted (the CSV has every round).  Before each
timed phase a throwaway file is written to and deleted from a second tmpfs:
memory left idle is handed back to the host and is slow on its next use.

## Method

$(machine method)

- **Backings**: \`tmpfs\` is a private tmpfs; \`disk\` is a folder on the
  root disk ($(machine disk_fs)).  Every file system runs on the same backing
  folder; \`raw\` is the backing folder itself.
- **Sequential**: \`dd if=/dev/zero bs=128K conv=fsync\`, then the file system
  is unmounted, \`drop_caches\` run, remounted (so no user-space cache either),
  and the file read back with \`dd bs=128K\` (\`seq_read_cold\`; quick runs only drop the
  page cache, without the remount).
- **CPU**: user + system seconds of the FUSE daemon (all threads, from
  \`/proc/PID/stat\`) during the sequential write, per GiB written;
  \`cpu_emu_per_gib\` is the same for sekeyfs's cube emulator, where the sealing
  happens (a hardware cube would do it off the host CPU).
- **Random 4 KiB**: fio, \`psync\`, \`--invalidate=1 --end_fsync=1
  --fallocate=none\`, one file per job, each 4 KiB block touched at most once
  per job (fio's random map) so reads miss the page cache; \`_j1\`/\`_j4\`: 1 or
  4 jobs.  Buffered I/O through FUSE is synchronous per call, so jobs, not
  iodepth, is the parallelism knob.
- **Small files**: create (one \`printf >\` each, 10 directories), \`stat\`
  each after \`drop_caches\`, \`rm -rf\`.
- **Tree**: \`tar -xf\` of a tarball of \`$(machine untar_src)\`, then after
  \`drop_caches\` each: \`ls -lR\`, \`md5sum\` of every file, \`rm -rf\`.
- **RSS**: the daemon's peak resident set (\`VmHWM\`) at the end of a round.
- **Ratios**: always *this file system / reference*, on the same backing in
  the same run; for MiB/s and IOPS higher is better, for seconds, CPU and
  MiB lower is better.

## Targets (sekeyfs, medians of this run)

| backing | target | measured | |
|---|---|---:|---|
$(targets | awk -F'|' '{ printf "| %s | %s | %s | %s |\n", $1, $2, $3, ($4 == "met" ? "met" : "**" $4 "**") }')

EOF
	for b in $backings; do
		printf '## Backing: %s\n\nMedians (of %s rounds):\n\n' "$b" \
			"$(awk -v b="$b" '$1 == b && $6 > n { n = $6 } END { print n + 0 }' "$tmp/summary")"
		md_pivot "$b"
		printf '\nRatios of sekeyfs to the others (on %s):\n\n' "$b"
		md_ratios "$b"
		awk -F, -v b="$b" '$1 == b && $3 == "skipped" { printf "\nSkipped: %s (%s).\n", $2, $8 }' "$csv" | sort -u
		for pl in "${plots[@]}"; do
			IFS='|' read -r pb png t <<<"$pl"
			[ "$pb" = "$b" ] && printf '\n![%s](%s)\n' "$t" "$png"
		done
		printf '\n'
	done
	printf '## Device and KMS figures\n\n| figure | value | unit |\n|---|---:|---|\n'
	awk -F, '$1 == "-" { printf "| %s %s | %s | %s |\n", $2, $3, $7, $4 }' "$csv"
	printf '\n'
	# hand-written observations (bench/NOTES.md) follow the generated part
	notes=${BENCH_NOTES:-$here/NOTES.md}
	if [ -f "$notes" ]; then cat "$notes"; fi
} >"$md"
echo "report: wrote $md and ${#plots[@]} charts" >&2
