# gnuplot /work/main/bench/results/charts/2026-11-22-latency_size.gp  (made by bench/report.py; data in the .tsv next to it)
set terminal pngcairo size 900,560 font 'sans,10' noenhanced
set output '2026-11-22-latency_size.png'
set datafile separator '\t'
set datafile missing '?'
set key inside left top box opaque
set grid
set title 'Latency of one get against value size (-c 1; median of runs, bars min-max)'
set logscale xy 10
set xlabel 'value size (bytes of JSON text)'
set ylabel 'latency per get (µs)'
set format x '%.0s%cB'
plot '2026-11-22-latency_size.tsv' using 1:2:3:4 with yerrorlines lw 3 pt 7 ps 0.8 title 'qcache L1 hit (qcache_get)', \
     '2026-11-22-latency_size.tsv' using 1:5:6:7 with yerrorlines lw 1.5 dt 2 pt 7 ps 0.8 title 'constant jsonb (SQL floor)', \
     '2026-11-22-latency_size.tsv' using 1:8:9:10 with yerrorlines lw 1.5 pt 7 ps 0.8 title 'raw Redis GET (no SQL)'
