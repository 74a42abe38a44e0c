./build-relax/examples/fmnist_rot --group c8 --relax triangle --relax-form additive --orthogonal --train-size 55000 --epochs 3 --eval-every 3 --val-size 5000 --seed 1 --threads 1 
