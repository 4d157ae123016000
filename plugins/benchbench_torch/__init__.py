"""The PyTorch backend: MLP score/energy networks, the train loop and the torch losses."""
