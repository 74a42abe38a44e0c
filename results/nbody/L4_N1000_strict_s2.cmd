build-nbody/examples/nbody --model egnn --layers 4 --train-size 1000 --epochs 80 --seed 2 --threads 1 --relax off --metrics results/nbody/L4_N1000_strict_s2.csv
