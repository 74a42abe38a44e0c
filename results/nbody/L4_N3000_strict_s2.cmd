build-nbody/examples/nbody --model egnn --layers 4 --train-size 3000 --epochs 80 --seed 2 --threads 1 --relax off --metrics results/nbody/L4_N3000_strict_s2.csv
