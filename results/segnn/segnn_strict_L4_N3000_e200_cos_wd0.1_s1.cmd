./build-nbody/examples/nbody --model segnn --relax off --layers 4 --train-size 3000 --epochs 200 --seed 1 --select best --lr-schedule cosine --wd 0.1 --threads 1
