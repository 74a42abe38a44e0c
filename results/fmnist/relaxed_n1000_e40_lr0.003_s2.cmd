./build-exp/examples/fmnist_rot --relax triangle --train-size 1000 --epochs 40 --eval-every 10 --lr 0.003 --seed 2 --threads 2
