"""Datasets: bundled CIFAR-10 subsets, packed-JPEG CIFAR-10, ImageFolder, torchvision CIFAR-10."""
