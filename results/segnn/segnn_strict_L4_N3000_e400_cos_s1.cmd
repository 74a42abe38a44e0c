./build-exp/examples/nbody --model segnn --relax off --layers 4 --train-size 3000 --epochs 400 --seed 1 --select best --lr-schedule cosine --threads 1
