./build-exp/examples/nbody --model segnn --relax triangle --layers 4 --train-size 1000 --epochs 100 --seed 3 --select best --threads 1
