./build-relax/examples/fmnist_rot --group c4 --relax triangle --relax-form rgconv --rgconv-banks 4 --train-size 55000 --epochs 3 --eval-every 3 --val-size 5000 --seed 2 --threads 1 
