./build-relax/examples/fmnist_rot --group d4 --relax triangle --relax-form rgconv --rgconv-banks 4 --train-size 5000 --epochs 12 --eval-every 12 --val-size 5000 --seed 2 --threads 1 
