# gnuplot /work/main/bench/results/charts/2026-11-22-mixed.gp  (made by bench/report.py; data in the .tsv next to it)
set terminal pngcairo size 900,560 font 'sans,10' noenhanced
set output '2026-11-22-mixed.png'
set datafile separator '\t'
set datafile missing '?'
set key inside left top box opaque
set grid
set title 'qcache: 10% sets or 10% invalidations among gets (1 KB values, 1000 keys)'
set key right bottom box opaque
set logscale x 2
set xtics (1, 2, 4, 8, 16, 32)
set xlabel 'clients (pgbench -c)'
set ylabel 'transactions per second'
set yrange [0:*]
set format y '%.0s%c'
plot '2026-11-22-mixed.tsv' using 1:2:3:4 with yerrorlines lw 3 pt 7 ps 0.8 title '100% gets', \
     '2026-11-22-mixed.tsv' using 1:5:6:7 with yerrorlines lw 3 pt 7 ps 0.8 title '10% sets', \
     '2026-11-22-mixed.tsv' using 1:8:9:10 with yerrorlines lw 3 pt 7 ps 0.8 title '10% invalidations'
