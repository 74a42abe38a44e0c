./build-relax/examples/fmnist_rot --group c4 --relax off --train-size 5000 --epochs 12 --eval-every 12 --val-size 5000 --seed 2 --threads 1 
