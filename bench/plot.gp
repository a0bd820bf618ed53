# messages/s against connection count, one line per server, from the data
# file bench/compare writes out of its JSON (first row: column names).
#   gnuplot -e "datafile='x.dat'; outfile='y.png'; ncols=5; plottitle='...'" bench/plot.gp
set terminal pngcairo size 900,560 noenhanced font ",11"
set output outfile
set title plottitle
set key autotitle columnhead top left box opaque
set logscale x 10
set xlabel "connections (each one 16 B message in flight)"
set ylabel "messages/s (median)"
set format y "%.0s%c"
set yrange [0:*]
set xrange [0.7:1500]
set grid
plot for [i=2:ncols] datafile using 1:i with linespoints lw 2 pt 7
