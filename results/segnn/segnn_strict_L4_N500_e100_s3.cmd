./build-exp/examples/nbody --model segnn --relax off --layers 4 --train-size 500 --epochs 100 --seed 3 --select best --threads 1
