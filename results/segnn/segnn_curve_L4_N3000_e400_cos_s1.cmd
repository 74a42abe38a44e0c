./build-nbody/examples/nbody --model segnn --relax off --layers 4 --train-size 3000 --epochs 400 --lr-schedule cosine --seed 1 --select best --test-curve --threads 1
