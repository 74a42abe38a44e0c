build/examples/nbody --model egnn --layers 4 --train-size 500 --epochs 80 --seed 1 --threads 1 --relax triangle --metrics results/nbody/L4_N500_relaxed_s1.csv
