./build-exp/examples/fmnist_rot --relax off --train-size 60000 --epochs 3 --eval-every 1 --lr 0.003 --seed 3 --threads 2
