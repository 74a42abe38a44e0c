build-nbody/examples/nbody --model egnn --layers 4 --train-size 1000 --epochs 80 --seed 2 --threads 1 --relax cosine --adaptive --metrics results/nbody/L4_N1000_adaptive_s2.csv
