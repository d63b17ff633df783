"""The devices: the GPU catalogue, nvidia-smi, SkyPilot's nodes, and their resolution into `Hardware`.

`catalog`, `types` and `cluster` are pure; `nvidia_smi` and `resolve` are the edge that runs nvidia-smi.
"""
