./build-exp/examples/nbody --model segnn --relax triangle --layers 6 --train-size 3000 --epochs 100 --seed 2 --select best --threads 1
