# bench/plot.gp - one clustered bar chart of benchmark medians, drawn by
# bench/report.sh:  gnuplot -e "in='F.dat'; out='F.png'; ttl='...'; yl='...'; logy=0" bench/plot.gp
# F.dat: a header line "fs phase1 phase2 ...", then one line per file system.
set terminal pngcairo size 960,480 font ",10"
set output out
set title ttl
set ylabel yl
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key outside right top autotitle columnhead noenhanced
set xtics noenhanced
set yrange [0:*]
if (logy) { set logscale y; set yrange [*:*] }
ncol = system(sprintf("awk 'NR == 1 { print NF; exit }' '%s'", in)) + 0
plot for [i=2:ncol] in using i:xtic(1)
