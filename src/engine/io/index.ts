// Checkpoint IO: safetensors and PyTorch zip checkpoints.
export {};
