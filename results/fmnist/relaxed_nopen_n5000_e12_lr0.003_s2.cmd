./build-exp/examples/fmnist_rot --relax triangle --lambda-defect 0 --lambda-norm 0 --train-size 5000 --epochs 12 --eval-every 4 --lr 0.003 --seed 2 --threads 2
