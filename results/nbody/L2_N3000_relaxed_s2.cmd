build/examples/nbody --model egnn --layers 2 --train-size 3000 --epochs 80 --seed 2 --threads 1 --relax triangle --metrics results/nbody/L2_N3000_relaxed_s2.csv
