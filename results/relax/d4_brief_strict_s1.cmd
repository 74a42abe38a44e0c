./build-relax/examples/fmnist_rot --group d4 --relax off --train-size 1000 --epochs 10 --eval-every 10 --val-size 5000 --seed 1 --threads 1 
