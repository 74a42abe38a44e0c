./build-exp/examples/nbody --model egnn --relax off --layers 4 --train-size 3000 --epochs 100 --seed 3 --select best --threads 1
