build/examples/nbody --model egnn --layers 4 --train-size 500 --epochs 80 --seed 2 --threads 1 --relax off --metrics results/nbody/L4_N500_strict_s2.csv
