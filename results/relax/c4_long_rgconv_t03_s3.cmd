./build-relax/examples/fmnist_rot --group c4 --relax triangle --relax-form rgconv --theta-max 0.3 --train-size 1000 --epochs 40 --eval-every 40 --val-size 5000 --seed 3 --threads 1 
