./build-exp/examples/fmnist_rot --relax off --train-size 1000 --epochs 40 --eval-every 10 --lr 0.003 --seed 1 --threads 2
