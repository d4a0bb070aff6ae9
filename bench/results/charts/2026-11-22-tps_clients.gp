# gnuplot /work/main/bench/results/charts/2026-11-22-tps_clients.gp  (made by bench/report.py; data in the .tsv next to it)
set terminal pngcairo size 900,560 font 'sans,10' noenhanced
set output '2026-11-22-tps_clients.png'
set datafile separator '\t'
set datafile missing '?'
set key inside left top box opaque
set grid
set title 'Get of a ~1 KB value: TPS against clients (pgbench -M prepared, 2 cores)'
set key below horizontal maxrows 2 nobox noopaque
set xlabel offset 0,0.5
set logscale x 2
set xtics (1, 2, 4, 8, 16, 32)
set xlabel 'clients (pgbench -c)'
set ylabel 'transactions per second'
set yrange [0:*]
set format y '%.0s%c'
plot '2026-11-22-tps_clients.tsv' using 1:2:3:4 with yerrorlines lw 3 pt 7 ps 0.8 title 'qcache L1 hit', \
     '2026-11-22-tps_clients.tsv' using 1:5:6:7 with yerrorlines lw 1.5 dt 2 pt 7 ps 0.8 title 'SELECT 1 (floor)', \
     '2026-11-22-tps_clients.tsv' using 1:8:9:10 with yerrorlines lw 1.5 dt 2 pt 7 ps 0.8 title '1 KB constant (payload floor)', \
     '2026-11-22-tps_clients.tsv' using 1:11:12:13 with yerrorlines lw 1.5 pt 7 ps 0.8 title 'unlogged table', \
     '2026-11-22-tps_clients.tsv' using 1:14:15:16 with yerrorlines lw 1.5 pt 7 ps 0.8 title 'pgmemcache', \
     '2026-11-22-tps_clients.tsv' using 1:17:18:19 with yerrorlines lw 1.5 pt 7 ps 0.8 title 'raw Redis GET (no SQL)'
