# gnuplot /work/main/bench/results/charts/2026-11-22-memory.gp  (made by bench/report.py; data in the .tsv next to it)
set terminal pngcairo size 900,560 font 'sans,10' noenhanced
set output '2026-11-22-memory.png'
set datafile separator '\t'
set datafile missing '?'
set key inside left top box opaque
set grid
set title 'Memory per entry against entry size (key 10 B + value)'
set multiplot layout 1,2
set key inside left top
set logscale xy 10
set xlabel 'entry size (bytes)'
set ylabel 'bytes of memory per entry'
set format x '%.0s%cB'
set format y '%.0s%cB'
plot '2026-11-22-memory.tsv' using 1:2 with linespoints lw 3 pt 7 title 'qcache (qcache.memory / entries that fit)', \
     '2026-11-22-memory.tsv' using 1:3 with linespoints lw 1.5 pt 5 title 'Redis used_memory / entries', \
     '2026-11-22-memory.tsv' using 1:4 with linespoints lw 1.5 dt 2 pt 4 title 'Redis MEMORY USAGE', \
     '2026-11-22-memory.tsv' using 1:5 with lines lw 1 lc 'gray' title 'the bytes themselves'
unset title
set logscale y 10
set logscale x 10
set ylabel 'overhead (% of the entry size)'
set format y '%g%%'
set key inside right top
plot '2026-11-22-memory.tsv' using 1:(100*($2-$1)/$1) with linespoints lw 3 pt 7 title 'qcache', \
     '2026-11-22-memory.tsv' using 1:(100*($3-$1)/$1) with linespoints lw 1.5 pt 5 title 'Redis used_memory', \
     '2026-11-22-memory.tsv' using 1:(100*($4-$1)/$1) with linespoints lw 1.5 dt 2 pt 4 title 'Redis MEMORY USAGE'
unset multiplot
