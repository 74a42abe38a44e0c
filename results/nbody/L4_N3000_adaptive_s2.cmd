build-nbody/examples/nbody --model egnn --layers 4 --train-size 3000 --epochs 80 --seed 2 --threads 1 --relax cosine --adaptive --metrics results/nbody/L4_N3000_adaptive_s2.csv
