./build-exp/examples/fmnist_rot --relax constant --train-size 60000 --epochs 3 --eval-every 1 --lr 0.003 --seed 1 --threads 2
