./build-exp/examples/nbody --model segnn --relax off --layers 2 --train-size 3000 --epochs 100 --seed 3 --select best --threads 1
